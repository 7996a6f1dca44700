import { ShipbotError } from "../../core/errors.ts";
import type { GitHubClient } from "../../github/create-github-client.ts";
import { toRepoRef } from "../../github/repo-ref.ts";
import type { ExecutorLog } from "../kubernetes/index.ts";
import type {
  ExecutionContext,
  ExecutionResult,
  ExecutorPort,
  RevisionInfo,
  Target,
  TargetStatus,
} from "../port.ts";
import { assertNotPaused } from "./assert-not-paused.ts";
import { readKustomizeImageName, type ValueLocation } from "./edit-config-yaml.ts";
import { waitForTarget } from "./wait-for-target.ts";
import { type ChangeOutcome, type ConfigFile, writeConfigChange } from "./write-config-change.ts";

/** Where one target's image lives in a config repository. */
export interface GitOpsFileConfig {
  /** owner/name of the config repository. */
  repo: string;
  branch: string;
  /** Path of the YAML file in the repository. */
  path: string;
  format: "kustomize-images" | "yaml-path";
  /** For yaml-path: dotted path of the tag (or of a full `image:tag` value), e.g. `image.tag`. */
  yamlPath?: string;
  /** Image name: the kustomize `images[].name`, or the repository a yaml-path value belongs to. */
  imageName: string;
  mode: "commit" | "pull-request";
  /** pull-request mode: merge the pull request at once (otherwise wait for a person to merge it). */
  autoMerge?: boolean;
  mergeMethod?: "merge" | "squash" | "rebase";
  /** Dotted path of the replica count in the same file; without it `scale` is refused. */
  replicasPath?: string;
}

export interface GitOpsExecutorOptions {
  github: GitHubClient;
  /**
   * Used read-only (status, history) to see what the cluster runs, and whether a Deployment is paused before
   * a deploy or rollback commits; never to change it.
   */
  kubeExecutorForWatching: Pick<ExecutorPort, "status" | "history">;
  /** Per target, keyed by `namespace/deployment` (see gitOpsTargetKey), or a lookup function. */
  repos: Record<string, GitOpsFileConfig> | ((target: Target) => GitOpsFileConfig | undefined);
  /** Longest wait for the cluster to run the committed change. */
  timeoutMs: number;
  /** Interval between reads of the cluster while waiting. */
  pollMs: number;
  /** Reads-and-writes of the file before giving up on concurrent edits; default 4. */
  maxWriteAttempts?: number;
  /** Commit author/committer; default: the identity of the GitHub credentials. */
  committer?: { name: string; email: string };
  log?: ExecutorLog;
}

const silentLog: ExecutorLog = { debug: () => {}, warn: () => {} };

export function gitOpsTargetKey(target: Pick<Target, "namespace" | "deployment">): string {
  return `${target.namespace}/${target.deployment}`;
}

/** `registry/org/name:tag` → repository and tag; digests are refused (GitOps files here hold tags). */
export function splitImage(image: string): { repository: string; tag: string } {
  if (image.includes("@")) {
    throw new ShipbotError("usage", `GitOps deploys take an image tag, not a digest (${image})`, {
      retryable: false,
    });
  }
  const colon = image.lastIndexOf(":");
  if (colon <= image.lastIndexOf("/") || colon === image.length - 1) {
    throw new ShipbotError("usage", `image \`${image}\` has no tag`, { retryable: false });
  }
  const tag = image.slice(colon + 1);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) {
    throw new ShipbotError("usage", `\`${tag.slice(0, 60)}\` is not a valid image tag`, { retryable: false });
  }
  return { repository: image.slice(0, colon), tag };
}

function describe(target: Target): string {
  return `${target.deployment} in ${target.namespace}`;
}

/**
 * The GitOps executor: deploys, rolls back and scales by committing to a config repository (directly or
 * through a pull request), then waits, read-only, until the cluster runs the change that Argo CD or Flux
 * applies. Status and history come from the cluster through the watching executor.
 */
export function createGitOpsExecutor(options: GitOpsExecutorOptions): ExecutorPort {
  const { github, kubeExecutorForWatching: kube } = options;
  const log = options.log ?? silentLog;
  const maxAttempts = options.maxWriteAttempts ?? 4;

  const configFor = (target: Target): GitOpsFileConfig => {
    const found =
      typeof options.repos === "function" ? options.repos(target) : options.repos[gitOpsTargetKey(target)];
    if (!found) {
      throw new ShipbotError("usage", `${describe(target)} has no GitOps file configured`, {
        retryable: false,
      });
    }
    return found;
  };

  const toFile = (config: GitOpsFileConfig): ConfigFile => ({
    repo: toRepoRef(config.repo),
    branch: config.branch,
    path: config.path,
    mode: config.mode,
    autoMerge: config.autoMerge ?? false,
    mergeMethod: config.mergeMethod ?? "squash",
  });

  const imageLocation = (config: GitOpsFileConfig): ValueLocation => {
    if (config.format === "kustomize-images")
      return { format: "kustomize-images", imageName: config.imageName };
    if (!config.yamlPath) {
      throw new ShipbotError(
        "usage",
        `GitOps file ${config.repo}/${config.path} uses yaml-path but sets no yamlPath`,
        {
          retryable: false,
        },
      );
    }
    return { format: "yaml-path", path: config.yamlPath };
  };

  /** Where the change can be seen, for progress and errors. */
  const waitingFor = (config: GitOpsFileConfig, outcome: ChangeOutcome): string =>
    outcome.kind === "pending-review" && outcome.pullRequest
      ? `pull request ${config.repo}#${outcome.pullRequest.number} to be merged and synced (${outcome.pullRequest.url})`
      : `${config.repo}${outcome.commitSha ? `@${outcome.commitSha.slice(0, 7)}` : ""} to be synced`;

  /** Writes the image tag and waits for the cluster to run `image`. */
  const setImage = async (
    target: Target,
    image: string,
    ctx: ExecutionContext,
    verb: string,
    action: string,
  ): Promise<{ outcome: ChangeOutcome; status: TargetStatus; config: GitOpsFileConfig }> => {
    const config = configFor(target);
    const { repository, tag } = splitImage(image);
    const file = toFile(config);
    const location = imageLocation(config);
    if (config.format === "yaml-path" && repository !== config.imageName) {
      throw new ShipbotError(
        "usage",
        `${config.repo}/${config.path} holds the tag of ${config.imageName}, not of ${repository}`,
        { retryable: false },
      );
    }
    const outcome = await writeConfigChange(github, {
      file,
      target,
      location,
      title: `${verb} ${image} to ${describe(target)}`,
      ctx,
      maxAttempts,
      log,
      ...(options.committer === undefined ? {} : { committer: options.committer }),
      // Scale has no such check: the controller still scales a paused Deployment.
      beforeWrite: () => assertNotPaused({ kube, target, action, where: config.repo }),
      validate: (text) => {
        if (config.format !== "kustomize-images") return;
        // With newName, kustomize swaps the repository too: the cluster would never run `image` as given.
        const effective = readKustomizeImageName(text, config.imageName, `${config.repo}/${config.path}`);
        if (effective !== repository) {
          throw new ShipbotError(
            "usage",
            effective === config.imageName
              ? `${config.repo}/${config.path} manages ${config.imageName}, not ${repository}`
              : `${config.repo}/${config.path} maps ${config.imageName} to ${effective}, so the cluster would not run ${image}`,
            { retryable: false },
          );
        }
      },
      value: (current) =>
        // A yaml path that holds a whole image reference keeps holding one.
        config.format === "yaml-path" &&
        typeof current === "string" &&
        current.startsWith(`${config.imageName}:`)
          ? `${config.imageName}:${tag}`
          : tag,
    });
    const status = await waitForTarget({
      kube,
      target,
      ctx,
      timeoutMs: options.timeoutMs,
      pollMs: options.pollMs,
      waitingFor: waitingFor(config, outcome),
      applied: (s) => s.image === image,
      reached: (s) => s.image === image && s.rollout.done,
    });
    return { outcome, status, config };
  };

  const previousImageOf = (config: GitOpsFileConfig, outcome: ChangeOutcome, fallback: string): string => {
    const previous = outcome.previous;
    if (previous === undefined) return fallback;
    const text = String(previous);
    return text.startsWith(`${config.imageName}:`) ? text : `${splitImage(fallback).repository}:${text}`;
  };

  const summaryOf = (outcome: ChangeOutcome, config: GitOpsFileConfig): string => {
    const where = `${config.repo}/${config.path}`;
    switch (outcome.kind) {
      case "committed":
        return outcome.pullRequest
          ? `merged ${config.repo}#${outcome.pullRequest.number} into ${where}`
          : `committed ${outcome.commitSha?.slice(0, 7) ?? ""} to ${where}`;
      case "resumed":
        return `found this job's commit ${outcome.commitSha?.slice(0, 7) ?? ""} in ${where}; resumed after a retry`;
      case "unchanged":
        return `${where} already held it; nothing committed`;
      case "pending-review":
        return `pull request ${config.repo}#${outcome.pullRequest?.number ?? "?"} was merged by hand`;
    }
  };

  const result = (
    status: TargetStatus,
    outcome: ChangeOutcome,
    config: GitOpsFileConfig,
    summary: string,
    previousImage: string,
  ): ExecutionResult => ({
    summary: `${summary} (${summaryOf(outcome, config)})`,
    image: status.image,
    previousImage,
    revision: status.revision,
    replicas: status.desired,
    resumed: outcome.kind === "resumed",
  });

  return {
    async deploy(target, image, ctx) {
      const { outcome, status, config } = await setImage(target, image, ctx, "deploy", "deploying");
      const previousImage = previousImageOf(config, outcome, image);
      return result(
        status,
        outcome,
        config,
        `image ${image} rolled out to ${describe(target)}`,
        previousImage,
      );
    },

    /**
     * Rolls back to the image of a cluster revision (the previous one with a different image by default),
     * written to git like a deploy. Cluster revisions are the numbers `history` shows, and they record what
     * actually ran, not only what was committed.
     */
    async rollback(target, revision, ctx) {
      const history = await kube.history(target);
      const current = history.find((r) => r.current);
      let wanted: RevisionInfo | undefined;
      if (revision !== undefined) {
        wanted = history.find((r) => r.revision === revision);
        if (!wanted) {
          throw new ShipbotError(
            "not_found",
            `revision ${revision} of ${describe(target)} not found; known revisions: ${history.map((r) => r.revision).join(", ")}`,
            { retryable: false },
          );
        }
      } else {
        wanted = history
          .filter(
            (r) => !r.current && r.image !== current?.image && r.revision < (current?.revision ?? Infinity),
          )
          .sort((a, b) => b.revision - a.revision)[0];
        if (!wanted) {
          throw new ShipbotError("not_found", `no earlier image of ${describe(target)} to roll back to`, {
            retryable: false,
          });
        }
      }
      const { outcome, status, config } = await setImage(
        target,
        wanted.image,
        ctx,
        "roll back to",
        "rolling back",
      );
      return result(
        status,
        outcome,
        config,
        `${describe(target)} rolled back to ${wanted.image} (revision ${wanted.revision})`,
        current?.image ?? previousImageOf(config, outcome, wanted.image),
      );
    },

    async scale(target, replicas, ctx) {
      const config = configFor(target);
      if (!config.replicasPath) {
        throw new ShipbotError(
          "usage",
          `scaling is managed by GitOps for this service: change replicas in ${config.repo}/${config.path}`,
          { retryable: false },
        );
      }
      const outcome = await writeConfigChange(github, {
        file: toFile(config),
        target,
        location: { format: "yaml-path", path: config.replicasPath },
        title: `scale ${describe(target)} to ${replicas} replicas`,
        ctx,
        maxAttempts,
        log,
        ...(options.committer === undefined ? {} : { committer: options.committer }),
        value: () => replicas,
      });
      const status = await waitForTarget({
        kube,
        target,
        ctx,
        timeoutMs: options.timeoutMs,
        pollMs: options.pollMs,
        mode: "scale",
        waitingFor: waitingFor(config, outcome),
        applied: (s) => s.desired === replicas,
        reached: (s) =>
          s.desired === replicas && s.rollout.done && s.rollout.total === replicas && s.available >= replicas,
      });
      return {
        summary: `${describe(target)} scaled to ${replicas} replicas (${summaryOf(outcome, config)})`,
        image: status.image,
        previousImage: status.image,
        revision: status.revision,
        replicas: status.desired,
        resumed: outcome.kind === "resumed",
      };
    },

    status: (target) => kube.status(target),
    history: (target) => kube.history(target),
  };
}
