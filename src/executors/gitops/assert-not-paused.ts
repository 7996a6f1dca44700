import { ShipbotError, toShipbotError } from "../../core/errors.ts";
import type { ExecutorPort, Target, TargetStatus } from "../port.ts";

export interface AssertNotPausedOptions {
  kube: Pick<ExecutorPort, "status">;
  target: Target;
  /** What the refusal asks the person to resume before: "deploying", "rolling back". */
  action: string;
  /** The config repository, named in the messages: nothing was committed to it. */
  where: string;
}

function describe(target: Target): string {
  return `${target.deployment} in ${target.namespace}`;
}

/**
 * Refuses, before anything is committed, a target whose Deployment is paused. A paused Deployment takes the
 * synced template but does not roll it out, so the commit would fail the job and yet stay in git, to ship
 * whenever someone resumes the Deployment; the Kubernetes executor refuses the same way before patching.
 *
 * A failed read also stops the write, with the read's code and `retryable` flag. Writing anyway would not
 * help: the wait that follows the commit reads the same API, so it would fail too and leave the commit behind
 * to roll out later, the very outcome this check prevents. A transient failure (unreachable API server,
 * 5xx, timeout) is retryable, so the worker tries the job again a bounded number of times and nothing is in
 * git if it never gets through; a lasting one (RBAC, missing Deployment) fails the job at once.
 */
export async function assertNotPaused(options: AssertNotPausedOptions): Promise<void> {
  const { kube, target, action, where } = options;
  let status: TargetStatus;
  try {
    status = await kube.status(target);
  } catch (error) {
    const cause = toShipbotError(error);
    throw new ShipbotError(
      cause.code,
      `${cause.message}; shipbot reads ${describe(target)} before committing, so nothing was committed to ${where}${cause.retryable ? " and a retry reads it again" : ""}`,
      { cause: error, retryable: cause.retryable },
    );
  }
  if (status.paused === true) {
    throw new ShipbotError(
      "conflict",
      `${describe(target)} is paused; resume it (kubectl rollout resume) before ${action}; nothing was committed to ${where}`,
      { retryable: false },
    );
  }
}
