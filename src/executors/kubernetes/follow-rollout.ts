import type { Watch } from "@kubernetes/client-node";
import { ShipbotError } from "../../core/errors.ts";
import type { RolloutProgress, Target } from "../port.ts";
import { type DeploymentShape, toRolloutState } from "./rollout-progress.ts";
import { toExecutorError } from "./to-executor-error.ts";

export interface ExecutorLog {
  debug(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface FollowRolloutOptions<D extends DeploymentShape> {
  target: Target;
  /** Reads the Deployment once (a GET). Errors are mapped and retried here when retryable. */
  read(signal: AbortSignal): Promise<D>;
  /** null disables watching (polling only). */
  watch: Watch | null;
  mode: "rollout" | "scale";
  pollMs: number;
  signal: AbortSignal;
  onProgress(progress: RolloutProgress): void;
  log: ExecutorLog;
  /** Consecutive failed reads tolerated before giving up; default 5. */
  maxReadFailures?: number;
}

type WatchOutcome =
  | { kind: "finished"; deployment: DeploymentShape }
  | { kind: "ended" }
  | { kind: "failed"; error: unknown }
  | { kind: "stalled"; error: unknown }
  | { kind: "deleted" };

/** A watch that cannot start this many times in a row is given up for polling. */
const watchFailuresBeforePolling = 3;

export function interrupted(target: Target): ShipbotError {
  return new ShipbotError(
    "timeout",
    `stopped following the rollout of ${target.deployment} in ${target.namespace}: shipbot was interrupted; the change stays applied and a retry picks the rollout up again`,
    { retryable: true },
  );
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Follows a rollout until it is done (resolves with the last Deployment seen), stalls (throws upstream),
 * or ctx.signal aborts (throws timeout). Watches from the last resourceVersion read; whenever the watch ends
 * (dropped connection, 410 Gone, server timeout) it reads again and resumes, and it falls back to polling
 * every pollMs when watching keeps failing.
 */
export async function followRollout<D extends DeploymentShape>(options: FollowRolloutOptions<D>): Promise<D> {
  const { target, signal, log } = options;
  const maxReadFailures = options.maxReadFailures ?? 5;
  let lastMessage: string | undefined;
  let readFailures = 0;
  let watchFailures = 0;
  let polling = options.watch === null;

  /** Reports progress; true when finished, throws when stalled. */
  const judge = (deployment: DeploymentShape): boolean => {
    const { progress, stalled, paused } = toRolloutState(deployment, options.mode);
    if (progress.message !== lastMessage) {
      lastMessage = progress.message;
      options.onProgress(progress);
    }
    if (stalled) {
      throw new ShipbotError(
        "upstream",
        `rollout of ${target.deployment} in ${target.namespace} ${progress.message} (the new pods are not becoming available; the old ones keep serving)`,
        { retryable: false },
      );
    }
    // The controller still scales a paused Deployment, so only a rollout waits on the pause.
    if (paused && options.mode === "rollout") {
      throw new ShipbotError(
        "conflict",
        `rollout of ${target.deployment} in ${target.namespace} stopped: the deployment was paused (${progress.message}); the change stays applied and rolls out once someone runs kubectl rollout resume`,
        { retryable: false },
      );
    }
    return progress.done;
  };

  while (true) {
    if (signal.aborted) throw interrupted(target);
    let deployment: D;
    try {
      deployment = await options.read(signal);
      readFailures = 0;
    } catch (error) {
      if (signal.aborted) throw interrupted(target);
      const mapped = toExecutorError(error, { target, verb: "get" });
      readFailures += 1;
      if (!mapped.retryable || readFailures > maxReadFailures) throw mapped;
      log.warn({ err: mapped, attempt: readFailures }, "reading the deployment failed; retrying");
      await sleep(Math.min(options.pollMs * 2 ** (readFailures - 1), 10_000), signal);
      continue;
    }
    if (judge(deployment)) return deployment;

    if (polling) {
      await sleep(options.pollMs, signal);
      continue;
    }
    const outcome = await watchOnce(options, deployment.metadata?.resourceVersion, judge);
    switch (outcome.kind) {
      case "finished":
        // The watch saw completion; one last read returns the typed object with everything settled.
        continue;
      case "stalled":
        throw outcome.error;
      case "deleted":
        throw new ShipbotError(
          "not_found",
          `deployment ${target.deployment} was deleted from namespace ${target.namespace} during the rollout`,
          { retryable: false },
        );
      case "failed": {
        if (signal.aborted) throw interrupted(target);
        const mapped = toExecutorError(outcome.error, { target, verb: "watch" });
        if (mapped.code === "forbidden") {
          log.warn({ err: mapped }, "not allowed to watch deployments; polling instead");
          polling = true;
          continue;
        }
        watchFailures += 1;
        if (watchFailures >= watchFailuresBeforePolling) {
          log.warn({ err: mapped }, "watching the deployment keeps failing; polling instead");
          polling = true;
        } else {
          log.debug({ err: mapped, attempt: watchFailures }, "watch failed; reading again and resuming");
          await sleep(Math.min(options.pollMs, 1000), signal);
        }
        continue;
      }
      case "ended":
        watchFailures = 0;
        continue;
    }
  }
}

/** One watch of the Deployment from `resourceVersion`; resolves when it finishes, ends or fails. */
async function watchOnce<D extends DeploymentShape>(
  options: FollowRolloutOptions<D>,
  resourceVersion: string | undefined,
  judge: (deployment: DeploymentShape) => boolean,
): Promise<WatchOutcome> {
  const { target, signal } = options;
  const watch = options.watch;
  if (watch === null) return { kind: "ended" };
  return new Promise<WatchOutcome>((resolve) => {
    let settled = false;
    let controller: AbortController | undefined;
    const settle = (outcome: WatchOutcome) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      controller?.abort();
      resolve(outcome);
    };
    const onAbort = () => settle({ kind: "ended" });
    signal.addEventListener("abort", onAbort, { once: true });

    const path = `/apis/apps/v1/namespaces/${encodeURIComponent(target.namespace)}/deployments`;
    const query: Record<string, string> = { fieldSelector: `metadata.name=${target.deployment}` };
    if (resourceVersion !== undefined) query.resourceVersion = resourceVersion;
    watch
      .watch(
        path,
        query,
        (type, object) => {
          if (settled) return;
          // Exceptions thrown here would be swallowed by the client's line parser, so none escape.
          try {
            if (type === "ERROR") {
              // 410 Gone (history compacted) and the like: read again and start from a fresh version.
              settle({ kind: "ended" });
            } else if (type === "DELETED") {
              settle({ kind: "deleted" });
            } else if (type === "ADDED" || type === "MODIFIED") {
              if (judge(object as DeploymentShape))
                settle({ kind: "finished", deployment: object as DeploymentShape });
            }
          } catch (error) {
            settle({ kind: "stalled", error });
          }
        },
        (error: unknown) => {
          if (error === null || error === undefined) settle({ kind: "ended" });
          else settle({ kind: "failed", error });
        },
      )
      .then(
        (started) => {
          controller = started;
          if (settled) started.abort();
        },
        (error: unknown) => settle({ kind: "failed", error }),
      );
  });
}
