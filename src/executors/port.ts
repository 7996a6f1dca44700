/**
 * What the worker needs from a deployment target. The Kubernetes executor implements it against the
 * API server; a GitOps executor can implement it by committing to a config repository.
 */

export interface Target {
  namespace: string;
  deployment: string;
  container: string;
}

/** A snapshot of a rollout, in the terms `kubectl rollout status` uses. */
export interface RolloutProgress {
  /** spec.replicas */
  desired: number;
  updated: number;
  available: number;
  /** status.replicas: counts old pods still running. */
  total: number;
  /** One line, e.g. "3 of 6 updated replicas are available". */
  message: string;
  done: boolean;
  /** False until the controller has seen the latest change (observedGeneration); counts are stale until then. */
  observed: boolean;
}

export interface ExecutionContext {
  /** The BullMQ job id: written to the Deployment so a retried job can tell its own write from others'. */
  jobId: string;
  /** The lease's fencing token: a write carrying a lower token than the one recorded is refused. */
  fence: number;
  /**
   * The token of this job's first attempt. A retried job finding a token above it from another job stops:
   * someone changed the target since, and re-applying would undo that.
   */
  firstFence?: number;
  signal: AbortSignal;
  onProgress(progress: RolloutProgress): void;
}

export interface ExecutionResult {
  /** Human summary for the card, e.g. "image ghcr.io/acme/api:v2 rolled out". */
  summary: string;
  image: string;
  previousImage: string;
  revision: number;
  replicas: number;
  /** True when the cluster already showed this job's write (a retry after a crash): nothing was applied again. */
  resumed: boolean;
}

export interface TargetStatus {
  image: string;
  revision: number;
  desired: number;
  updated: number;
  available: number;
  rollout: RolloutProgress;
  /**
   * The controller reports the rollout past its progress deadline (ProgressDeadlineExceeded): it will not
   * finish by itself. Absent where the executor cannot tell.
   */
  stalled?: boolean;
  /**
   * The Deployment is paused (`kubectl rollout pause`): the controller rolls out no change until someone
   * resumes it. Absent where the executor cannot tell.
   */
  paused?: boolean;
  /** Annotations written by shipbot (job id, fence), if any. */
  lastJobId: string | undefined;
}

export interface RevisionInfo {
  revision: number;
  image: string;
  current: boolean;
}

export interface ExecutorPort {
  /** Sets the container image, then follows the rollout until done, failed or aborted. */
  deploy(target: Target, image: string, ctx: ExecutionContext): Promise<ExecutionResult>;
  /** Restores the pod template of `revision` (or the previous one), as `kubectl rollout undo` does. */
  rollback(target: Target, revision: number | undefined, ctx: ExecutionContext): Promise<ExecutionResult>;
  /** Sets the replica count through the scale subresource, then waits until that many are available. */
  scale(target: Target, replicas: number, ctx: ExecutionContext): Promise<ExecutionResult>;
  status(target: Target): Promise<TargetStatus>;
  history(target: Target): Promise<RevisionInfo[]>;
}
