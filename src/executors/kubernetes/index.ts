export {
  annotations,
  createKubernetesExecutor,
  type ExecutorLog,
  type KubernetesExecutorOptions,
} from "./create-kubernetes-executor.ts";
export { type KubeConfigSource, loadKubeConfig } from "./load-kube-config.ts";
export { type DeploymentShape, type RolloutState, toRolloutState } from "./rollout-progress.ts";
