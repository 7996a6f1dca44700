import { type Config, resolveTarget } from "../core/config.ts";
import type { GitOpsFileConfig } from "./gitops/index.ts";
import type { ExecutorPort, Target } from "./port.ts";

/**
 * One executor per target: services configured with `gitops` go through the GitOps executor (a commit
 * to their config repository), all others through the Kubernetes executor. Targets are matched by
 * namespace and Deployment name, which the config makes unique per service and environment.
 */
export function routeExecutor(
  config: Config,
  kubernetes: ExecutorPort,
  gitops: ExecutorPort | undefined,
): ExecutorPort {
  const viaGitOps = new Set<string>();
  for (const [service, svc] of Object.entries(config.services)) {
    if (!svc.gitops) continue;
    for (const env of Object.keys(svc.environments)) {
      const t = resolveTarget(config, service, env);
      if (t) viaGitOps.add(`${t.namespace}/${t.deployment}`);
    }
  }
  if (viaGitOps.size === 0 || !gitops) return kubernetes;
  const pick = (target: Target): ExecutorPort =>
    viaGitOps.has(`${target.namespace}/${target.deployment}`) ? gitops : kubernetes;
  return {
    deploy: (target, image, ctx) => pick(target).deploy(target, image, ctx),
    rollback: (target, revision, ctx) => pick(target).rollback(target, revision, ctx),
    scale: (target, replicas, ctx) => pick(target).scale(target, replicas, ctx),
    status: (target) => pick(target).status(target),
    history: (target) => pick(target).history(target),
  };
}

/** The config-repository file a GitOps target's tag lives in, from the service's `gitops` settings. */
export function gitOpsFileFor(config: Config, target: Target): GitOpsFileConfig | undefined {
  for (const [service, svc] of Object.entries(config.services)) {
    if (!svc.gitops) continue;
    for (const env of Object.keys(svc.environments)) {
      const t = resolveTarget(config, service, env);
      if (!t || t.namespace !== target.namespace || t.deployment !== target.deployment) continue;
      const g = svc.gitops;
      return {
        repo: g.repo,
        branch: g.branch,
        path: g.path.replaceAll("{env}", env),
        format: g.format,
        ...(g.yamlPath === undefined ? {} : { yamlPath: g.yamlPath }),
        imageName: g.imageName ?? svc.image,
        mode: g.mode,
        autoMerge: g.autoMerge,
        ...(g.replicasPath === undefined ? {} : { replicasPath: g.replicasPath }),
      };
    }
  }
  return undefined;
}
