import { ShipbotError } from "../../core/errors.ts";
import type { ExecutionContext, ExecutorPort, Target, TargetStatus } from "../port.ts";

export interface WaitForTargetOptions {
  kube: Pick<ExecutorPort, "status">;
  target: Target;
  /** True once the cluster shows the change and its rollout is finished. */
  reached(status: TargetStatus): boolean;
  /** True once the cluster shows the change at all (the rollout may still be moving). */
  applied(status: TargetStatus): boolean;
  ctx: ExecutionContext;
  timeoutMs: number;
  pollMs: number;
  /** What is awaited, for progress and errors: e.g. "acme/config@3f2c1ab to be synced". */
  waitingFor: string;
  /** Consecutive failed reads tolerated before giving up; default 5. */
  maxReadFailures?: number;
  /**
   * "rollout" (default) stops on a paused Deployment; "scale" keeps waiting, since the controller still
   * scales a paused Deployment.
   */
  mode?: "rollout" | "scale";
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

function describe(target: Target): string {
  return `${target.deployment} in ${target.namespace}`;
}

/**
 * Polls the cluster read-only until the change written to git is running: a GitOps controller (Argo CD,
 * Flux) applies it on its own schedule, so there is nothing to watch for but the Deployment itself.
 * Ends on success, on `ctx.signal` (interrupted: a retry resumes the wait), when the cluster runs the change
 * but cannot finish it (past its progress deadline, or paused), or after `timeoutMs`.
 */
export async function waitForTarget(options: WaitForTargetOptions): Promise<TargetStatus> {
  const { target, ctx } = options;
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([ctx.signal, deadline]);
  const maxReadFailures = options.maxReadFailures ?? 5;
  let failures = 0;
  let lastMessage: string | undefined;

  while (true) {
    if (ctx.signal.aborted) {
      throw new ShipbotError(
        "timeout",
        `stopped waiting for ${describe(target)}: shipbot was interrupted; the change stays in git and a retry waits again`,
        { retryable: true },
      );
    }
    if (deadline.aborted) {
      throw new ShipbotError(
        "timeout",
        `${describe(target)} did not pick up the change within ${Math.max(1, Math.ceil(options.timeoutMs / 1000))} s while waiting for ${options.waitingFor}; the change stays in git: check that Argo CD or Flux syncs it`,
        { retryable: false },
      );
    }
    let status: TargetStatus;
    try {
      status = await options.kube.status(target);
      failures = 0;
    } catch (error) {
      const retryable =
        typeof error === "object" && error !== null && (error as { retryable?: unknown }).retryable;
      failures += 1;
      if (retryable !== true || failures > maxReadFailures) throw error;
      await sleep(options.pollMs, signal);
      continue;
    }
    if (options.reached(status)) {
      ctx.onProgress(status.rollout);
      return status;
    }
    const applied = options.applied(status);
    if (applied && status.stalled === true) {
      // The controller synced the change and the cluster gave up on it: waiting longer cannot help, and
      // the timeout would wrongly blame the sync.
      ctx.onProgress(status.rollout);
      throw new ShipbotError(
        "upstream",
        `rollout of ${describe(target)} ${status.rollout.message} (the new pods are not becoming available; the old ones keep serving); the change stays in git`,
        { retryable: false },
      );
    }
    if (applied && status.paused === true && options.mode !== "scale") {
      // A paused Deployment takes the synced template but does not roll it out, and the controller holds
      // it to no progress deadline: only a resume moves it, so waiting out the timeout would only mislead.
      ctx.onProgress(status.rollout);
      throw new ShipbotError(
        "conflict",
        `rollout of ${describe(target)} stopped: the deployment was paused (${status.rollout.message}); the change stays in git and rolls out once someone runs kubectl rollout resume`,
        { retryable: false },
      );
    }
    const progress = applied
      ? status.rollout
      : // Not in the cluster yet: report it as a change the controller has not seen.
        { ...status.rollout, observed: false, done: false, message: `waiting for ${options.waitingFor}` };
    if (progress.message !== lastMessage) {
      lastMessage = progress.message;
      ctx.onProgress(progress);
    }
    await sleep(options.pollMs, signal);
  }
}
