export {
  createGitOpsExecutor,
  type GitOpsExecutorOptions,
  type GitOpsFileConfig,
  gitOpsTargetKey,
  splitImage,
} from "./create-gitops-executor.ts";
export { readConfigValue, type ValueLocation, writeConfigValue } from "./edit-config-yaml.ts";
export { pullRequestBranch } from "./write-config-change.ts";
