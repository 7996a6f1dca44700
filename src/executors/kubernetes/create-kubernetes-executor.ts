import {
  AppsV1Api,
  type ConfigurationOptions,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
  type V1PodTemplateSpec,
  type V1ReplicaSet,
  Watch,
} from "@kubernetes/client-node";
import { ShipbotError } from "../../core/errors.ts";
import type {
  ExecutionContext,
  ExecutionResult,
  ExecutorPort,
  RevisionInfo,
  Target,
  TargetStatus,
} from "../port.ts";
import { type ExecutorLog, followRollout, interrupted } from "./follow-rollout.ts";
import { toRolloutState } from "./rollout-progress.ts";
import { toExecutorError } from "./to-executor-error.ts";

export type { ExecutorLog } from "./follow-rollout.ts";

export interface KubernetesExecutorOptions {
  kubeConfig: KubeConfig;
  /** Interval between reads when watching is not possible, and the base of retry backoff; default 1000 ms. */
  pollMs?: number;
  /** Timeout of each non-watch API call; default 15000 ms. */
  requestTimeoutMs?: number;
  /** Follow rollouts with a watch (default) or by polling only. */
  watch?: boolean;
  log?: ExecutorLog;
}

/** Annotations shipbot writes on the Deployment so a retried job can recognise its own write. */
export const annotations = {
  jobId: "shipbot.dev/job-id",
  fence: "shipbot.dev/fence",
  /** Shown by `kubectl rollout history`; the controller copies it to the revision's ReplicaSet. */
  changeCause: "kubernetes.io/change-cause",
  /** The replica count a scale job found before its first write, for its summary after a retry. */
  replicasBefore: "shipbot.dev/replicas-before",
} as const;

const revisionAnnotation = "deployment.kubernetes.io/revision";
/** Annotations `kubectl rollout undo` keeps from the Deployment instead of copying them from the ReplicaSet. */
const rollbackKeepsFromDeployment = [
  "kubectl.kubernetes.io/last-applied-configuration",
  revisionAnnotation,
  "deployment.kubernetes.io/revision-history",
  "deployment.kubernetes.io/desired-replicas",
  "deployment.kubernetes.io/max-replicas",
  "deprecated.deployment.rollback.to",
];

const silentLog: ExecutorLog = { debug: () => {}, warn: () => {} };

function revisionOf(object: { metadata?: { annotations?: Record<string, string> } }): number {
  const value = Number(object.metadata?.annotations?.[revisionAnnotation] ?? 0);
  return Number.isInteger(value) && value > 0 ? value : 0;
}

/** Plain JSON of a client-node model (its property names match the API's for pod templates). */
function toJson<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value ?? null)) as unknown;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a))
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null && !Array.isArray(b)) {
    const ka = Object.keys(a);
    const rb = b as Record<string, unknown>;
    return (
      ka.length === Object.keys(rb).length &&
      ka.every((k) => k in rb && deepEqual((a as Record<string, unknown>)[k], rb[k]))
    );
  }
  return false;
}

/** The template as JSON without the controller's pod-template-hash label (kubectl's equalIgnoreHash). */
function templateWithoutHash(template: V1PodTemplateSpec | undefined): Record<string, unknown> {
  const json = (toJson(template) ?? {}) as {
    metadata?: { labels?: Record<string, string>; creationTimestamp?: unknown };
  };
  if (json.metadata) {
    delete json.metadata.creationTimestamp;
    if (json.metadata.labels) {
      delete json.metadata.labels["pod-template-hash"];
      if (Object.keys(json.metadata.labels).length === 0) delete json.metadata.labels;
    }
    if (Object.keys(json.metadata).length === 0) delete json.metadata;
  }
  return json as Record<string, unknown>;
}

/** The replica count a scale job's claim recorded, when it recorded one. */
function recordedReplicasBefore(deployment: V1Deployment): number | undefined {
  const value = Number(deployment.metadata?.annotations?.[annotations.replicasBefore] ?? Number.NaN);
  return Number.isInteger(value) && value >= 0 ? value : undefined;
}

function containerImage(template: V1PodTemplateSpec | undefined, container: string): string | undefined {
  return template?.spec?.containers.find((c) => c.name === container)?.image;
}

function describe(target: Target): string {
  return `${target.deployment} in ${target.namespace}`;
}

/**
 * The Kubernetes executor: changes Deployments through the API server with client-node, records the job id
 * and fencing token on them, and follows rollouts the way `kubectl rollout status` judges them.
 */
export function createKubernetesExecutor(options: KubernetesExecutorOptions): ExecutorPort {
  const api = options.kubeConfig.makeApiClient(AppsV1Api);
  const watch = options.watch === false ? null : new Watch(options.kubeConfig);
  const pollMs = options.pollMs ?? 1000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
  const log = options.log ?? silentLog;

  /** Per-call options: the job's abort signal plus a timeout, and the patch Content-Type when given. */
  const callOptions = (
    signal: AbortSignal | undefined,
    contentType?: PatchStrategy,
  ): ConfigurationOptions => {
    const bounded = signal
      ? AbortSignal.any([signal, AbortSignal.timeout(requestTimeoutMs)])
      : AbortSignal.timeout(requestTimeoutMs);
    const withSignal: ObservableMiddleware = {
      pre: (request) => {
        request.setSignal(bounded);
        return new Observable(Promise.resolve(request));
      },
      post: (response) => new Observable(Promise.resolve(response)),
    };
    const base: ConfigurationOptions = { middleware: [withSignal], middlewareMergeStrategy: "append" };
    return contentType === undefined ? base : setHeaderOptions("Content-Type", contentType, base);
  };

  /** Runs one API call, mapping its failure once; an abort by the job becomes "interrupted". */
  const call = async <T>(
    target: Target,
    verb: string,
    signal: AbortSignal | undefined,
    run: () => Promise<T>,
    resource?: string,
  ): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      if (signal?.aborted) throw interrupted(target);
      throw toExecutorError(error, { target, verb, ...(resource === undefined ? {} : { resource }) });
    }
  };

  const read = (target: Target, signal?: AbortSignal): Promise<V1Deployment> =>
    call(target, "get", signal, () =>
      api.readNamespacedDeployment(
        { name: target.deployment, namespace: target.namespace },
        callOptions(signal),
      ),
    );

  const listRevisions = async (
    target: Target,
    deployment: V1Deployment,
    signal?: AbortSignal,
  ): Promise<V1ReplicaSet[]> => {
    const matchLabels = deployment.spec?.selector.matchLabels ?? {};
    const labelSelector = Object.entries(matchLabels)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    const list = await call(
      target,
      "list",
      signal,
      () => api.listNamespacedReplicaSet({ namespace: target.namespace, labelSelector }, callOptions(signal)),
      "replicasets",
    );
    const uid = deployment.metadata?.uid;
    // The selector may match other controllers' ReplicaSets; only those this Deployment controls count.
    return list.items.filter((rs) =>
      rs.metadata?.ownerReferences?.some((o) => o.controller === true && o.uid === uid),
    );
  };

  const requireContainer = (target: Target, deployment: V1Deployment): string => {
    const containers = deployment.spec?.template.spec?.containers ?? [];
    const found = containers.find((c) => c.name === target.container);
    if (!found) {
      throw new ShipbotError(
        "not_found",
        `container ${target.container} not found in deployment ${target.deployment} (namespace ${target.namespace}); containers: ${containers.map((c) => c.name).join(", ")}`,
        { retryable: false },
      );
    }
    return found.image ?? "";
  };

  /** Refuses when a newer lease holder already wrote to this Deployment. */
  const assertFence = (target: Target, deployment: V1Deployment, ctx: ExecutionContext): void => {
    const recorded = Number(deployment.metadata?.annotations?.[annotations.fence] ?? Number.NaN);
    const first = ctx.firstFence ?? ctx.fence;
    if (
      Number.isFinite(recorded) &&
      recorded > first &&
      recorded < ctx.fence &&
      !ownedByJob(deployment, ctx)
    ) {
      throw new ShipbotError(
        "conflict",
        `another operation changed ${describe(target)} after this one first started (fence ${recorded} > ${first}); this one stops without applying again`,
        { retryable: false },
      );
    }
    if (Number.isFinite(recorded) && recorded > ctx.fence) {
      throw new ShipbotError(
        "conflict",
        `a newer operation owns ${describe(target)} (fence ${recorded} > ${ctx.fence}); this one stops without changing anything`,
        { retryable: false },
      );
    }
  };

  const ownedByJob = (deployment: V1Deployment, ctx: ExecutionContext): boolean =>
    deployment.metadata?.annotations?.[annotations.jobId] === ctx.jobId;

  const follow = (target: Target, ctx: ExecutionContext, mode: "rollout" | "scale") =>
    followRollout<V1Deployment>({
      target,
      read: (signal) => read(target, signal),
      watch,
      mode,
      pollMs,
      signal: ctx.signal,
      onProgress: (progress) => ctx.onProgress(progress),
      log,
    });

  /**
   * Reads, decides and writes, retrying the whole decision once when the write hits a 409 (someone else
   * wrote between our read and our write).
   */
  const withConflictRetry = async <T>(
    target: Target,
    attempt: (deployment: V1Deployment) => Promise<T>,
    ctx: ExecutionContext,
  ): Promise<T> => {
    for (let tries = 0; ; tries++) {
      const deployment = await read(target, ctx.signal);
      try {
        return await attempt(deployment);
      } catch (error) {
        if (tries === 0 && error instanceof ShipbotError && error.code === "conflict" && error.retryable) {
          log.debug({ target }, "deployment changed between read and write; reading again");
          continue;
        }
        throw error;
      }
    }
  };

  const shipbotAnnotations = (ctx: ExecutionContext, cause: string): Record<string, string> => ({
    [annotations.jobId]: ctx.jobId,
    [annotations.fence]: String(ctx.fence),
    [annotations.changeCause]: cause,
  });

  /** Image of the highest revision below the current one, for a resumed job that no longer sees "before". */
  const previousImageFromHistory = async (
    target: Target,
    deployment: V1Deployment,
    ctx: ExecutionContext,
  ): Promise<string> => {
    const current = revisionOf(deployment);
    const older = (await listRevisions(target, deployment, ctx.signal))
      .filter((rs) => revisionOf(rs) < current)
      .sort((a, b) => revisionOf(b) - revisionOf(a))[0];
    return containerImage(older?.spec?.template, target.container) ?? "";
  };

  const result = (
    deployment: V1Deployment,
    target: Target,
    fields: { summary: string; previousImage: string; resumed: boolean },
  ): ExecutionResult => ({
    summary: fields.summary,
    image: containerImage(deployment.spec?.template, target.container) ?? "",
    previousImage: fields.previousImage,
    revision: revisionOf(deployment),
    replicas: deployment.spec?.replicas ?? 1,
    resumed: fields.resumed,
  });

  return {
    async deploy(target, image, ctx) {
      const outcome = await withConflictRetry(
        target,
        async (deployment) => {
          const current = requireContainer(target, deployment);
          if (ownedByJob(deployment, ctx)) return { kind: "resume" as const, previousImage: undefined };
          // Already running the wanted image: nothing to write, so no fence to check (a retried job whose
          // change is live, even if another operation wrote since, finishes instead of failing).
          if (current === image) {
            const state = toRolloutState(deployment);
            if (state.progress.done) return { kind: "unchanged" as const, deployment };
            return { kind: "follow" as const, previousImage: current };
          }
          // A paused Deployment takes the new template but does not roll it out: the job would hold the
          // target until its timeout and leave a change that ships whenever someone resumes it.
          if (deployment.spec?.paused) {
            throw new ShipbotError(
              "conflict",
              `${describe(target)} is paused; resume it (kubectl rollout resume) before deploying`,
              { retryable: false },
            );
          }
          assertFence(target, deployment, ctx);
          const patch = {
            metadata: {
              // A precondition: the API server answers 409 if the Deployment changed since this read.
              resourceVersion: deployment.metadata?.resourceVersion,
              annotations: shipbotAnnotations(ctx, `shipbot job ${ctx.jobId}: deploy ${image}`),
            },
            // Strategic merge matches containers by name, so only this container's image changes.
            spec: { template: { spec: { containers: [{ name: target.container, image }] } } },
          };
          await call(target, "patch", ctx.signal, () =>
            api.patchNamespacedDeployment(
              { name: target.deployment, namespace: target.namespace, body: patch },
              callOptions(ctx.signal, PatchStrategy.StrategicMergePatch),
            ),
          );
          log.debug({ target, image, jobId: ctx.jobId }, "deployment patched");
          return { kind: "follow" as const, previousImage: current };
        },
        ctx,
      );
      if (outcome.kind === "unchanged") {
        return result(outcome.deployment, target, {
          summary: `${image} is already running on ${describe(target)}; nothing to do`,
          previousImage: image,
          resumed: false,
        });
      }
      const done = await follow(target, ctx, "rollout");
      const resumed = outcome.kind === "resume";
      const previousImage = outcome.previousImage ?? (await previousImageFromHistory(target, done, ctx));
      return result(done, target, {
        summary: `image ${image} rolled out to ${describe(target)} (revision ${revisionOf(done)})${resumed ? "; resumed after a retry" : ""}`,
        previousImage,
        resumed,
      });
    },

    async rollback(target, revision, ctx) {
      const outcome = await withConflictRetry(
        target,
        async (deployment) => {
          if (ownedByJob(deployment, ctx)) return { kind: "resume" as const, previousImage: undefined };
          assertFence(target, deployment, ctx);
          const current = requireContainer(target, deployment);
          if (deployment.spec?.paused) {
            throw new ShipbotError(
              "conflict",
              `${describe(target)} is paused; resume it (kubectl rollout resume) before rolling back`,
              { retryable: false },
            );
          }
          const revisions = await listRevisions(target, deployment, ctx.signal);
          const numbers = [...new Set(revisions.map(revisionOf))].sort((a, b) => a - b);
          let wanted: number;
          if (revision === undefined) {
            // Like kubectl: the second-highest revision among the Deployment's ReplicaSets.
            const previous = numbers.at(-2);
            if (previous === undefined) {
              throw new ShipbotError(
                "not_found",
                `no previous revision of ${describe(target)} to roll back to`,
                {
                  retryable: false,
                },
              );
            }
            wanted = previous;
          } else {
            wanted = revision;
          }
          const source = revisions.find((rs) => revisionOf(rs) === wanted);
          if (!source?.spec?.template) {
            throw new ShipbotError(
              "not_found",
              `revision ${wanted} of ${describe(target)} not found; known revisions: ${numbers.join(", ")}`,
              { retryable: false },
            );
          }
          const template = templateWithoutHash(source.spec.template);
          const image = containerImage(source.spec.template, target.container);
          if (image === undefined) {
            throw new ShipbotError(
              "not_found",
              `container ${target.container} not found in revision ${wanted} of ${describe(target)}`,
              { retryable: false },
            );
          }
          if (deepEqual(template, templateWithoutHash(deployment.spec?.template))) {
            return { kind: "unchanged" as const, deployment, wanted };
          }
          const kept: Record<string, string> = {};
          const fromDeployment = deployment.metadata?.annotations ?? {};
          for (const key of rollbackKeepsFromDeployment) {
            const value = fromDeployment[key];
            if (value !== undefined) kept[key] = value;
          }
          for (const [key, value] of Object.entries(source.metadata?.annotations ?? {})) {
            if (!rollbackKeepsFromDeployment.includes(key)) kept[key] = value;
          }
          Object.assign(
            kept,
            shipbotAnnotations(ctx, `shipbot job ${ctx.jobId}: roll back to revision ${wanted} (${image})`),
          );
          const patch = [
            // Setting the read resourceVersion makes it a precondition: 409 if anyone wrote since.
            { op: "replace", path: "/metadata/resourceVersion", value: deployment.metadata?.resourceVersion },
            { op: "replace", path: "/spec/template", value: template },
            { op: "add", path: "/metadata/annotations", value: kept },
          ];
          await call(target, "patch", ctx.signal, () =>
            api.patchNamespacedDeployment(
              { name: target.deployment, namespace: target.namespace, body: patch },
              callOptions(ctx.signal, PatchStrategy.JsonPatch),
            ),
          );
          log.debug({ target, revision: wanted, jobId: ctx.jobId }, "deployment rolled back");
          return { kind: "follow" as const, previousImage: current };
        },
        ctx,
      );
      if (outcome.kind === "unchanged") {
        return result(outcome.deployment, target, {
          summary: `${describe(target)} already runs the template of revision ${outcome.wanted}; nothing to roll back`,
          previousImage: containerImage(outcome.deployment.spec?.template, target.container) ?? "",
          resumed: false,
        });
      }
      const done = await follow(target, ctx, "rollout");
      const resumed = outcome.kind === "resume";
      const previousImage = outcome.previousImage ?? (await previousImageFromHistory(target, done, ctx));
      const image = containerImage(done.spec?.template, target.container) ?? "";
      return result(done, target, {
        summary: `${describe(target)} rolled back to ${image} (now revision ${revisionOf(done)})${resumed ? "; resumed after a retry" : ""}`,
        previousImage,
        resumed,
      });
    },

    async scale(target, replicas, ctx) {
      const outcome = await withConflictRetry(
        target,
        async (deployment) => {
          requireContainer(target, deployment);
          const current = deployment.spec?.replicas ?? 1;
          if (ownedByJob(deployment, ctx)) {
            // The first attempt may have scaled already, so `current` can be the new count: its claim
            // recorded the count it started from.
            return { kind: "resume" as const, current, before: recordedReplicasBefore(deployment) };
          }
          assertFence(target, deployment, ctx);
          if (current === replicas && toRolloutState(deployment, "scale").progress.done) {
            return { kind: "unchanged" as const, deployment };
          }
          // Claim the Deployment first (job id + fence, guarded by resourceVersion); the scale write that
          // follows is idempotent, so a crash between the two is repaired by the retry.
          const claim = {
            metadata: {
              resourceVersion: deployment.metadata?.resourceVersion,
              annotations: {
                [annotations.jobId]: ctx.jobId,
                [annotations.fence]: String(ctx.fence),
                [annotations.replicasBefore]: String(current),
              },
            },
          };
          await call(target, "patch", ctx.signal, () =>
            api.patchNamespacedDeployment(
              { name: target.deployment, namespace: target.namespace, body: claim },
              callOptions(ctx.signal, PatchStrategy.MergePatch),
            ),
          );
          return { kind: "claimed" as const, current, before: current };
        },
        ctx,
      );
      if (outcome.kind === "unchanged") {
        return result(outcome.deployment, target, {
          summary: `${describe(target)} already runs ${replicas} replicas; nothing to do`,
          previousImage: containerImage(outcome.deployment.spec?.template, target.container) ?? "",
          resumed: false,
        });
      }
      let applied = false;
      if (outcome.kind === "claimed" || outcome.current !== replicas) {
        await call(
          target,
          "patch",
          ctx.signal,
          () =>
            api.patchNamespacedDeploymentScale(
              { name: target.deployment, namespace: target.namespace, body: { spec: { replicas } } },
              callOptions(ctx.signal, PatchStrategy.MergePatch),
            ),
          "deployments/scale",
        );
        applied = true;
      }
      const done = await follow(target, ctx, "scale");
      const image = containerImage(done.spec?.template, target.container) ?? "";
      const resumed = outcome.kind === "resume" && !applied;
      // Without a recorded count (a claim written before shipbot kept one), the count read now is the
      // count before only if this attempt did the scaling.
      const before = outcome.before ?? (applied ? outcome.current : undefined);
      const change =
        before === undefined
          ? `${describe(target)} already at ${replicas} replicas`
          : `${describe(target)} scaled from ${before} to ${replicas} replicas`;
      return result(done, target, {
        summary: `${change}${resumed ? "; resumed after a retry" : ""}`,
        previousImage: image,
        resumed,
      });
    },

    async status(target) {
      const deployment = await read(target);
      const image = requireContainer(target, deployment);
      const { progress, stalled } = toRolloutState(deployment);
      return {
        image,
        revision: revisionOf(deployment),
        desired: progress.desired,
        updated: progress.updated,
        available: progress.available,
        rollout: progress,
        stalled,
        // Paused at rest too: a change written now (GitOps) would wait for a resume.
        paused: deployment.spec?.paused === true,
        lastJobId: deployment.metadata?.annotations?.[annotations.jobId],
      } satisfies TargetStatus;
    },

    async history(target) {
      const deployment = await read(target);
      requireContainer(target, deployment);
      const current = revisionOf(deployment);
      const revisions = await listRevisions(target, deployment);
      return revisions
        .map(
          (rs): RevisionInfo => ({
            revision: revisionOf(rs),
            image:
              containerImage(rs.spec?.template, target.container) ??
              rs.spec?.template?.spec?.containers[0]?.image ??
              "",
            current: revisionOf(rs) === current,
          }),
        )
        .filter((r) => r.revision > 0)
        .sort((a, b) => a.revision - b.revision);
    },
  };
}
