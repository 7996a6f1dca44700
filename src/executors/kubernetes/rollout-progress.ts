import type { RolloutProgress } from "../port.ts";

/**
 * The fields of a Deployment that rollout judgement needs. Both client-node's V1Deployment and the raw JSON
 * of a watch event satisfy it.
 */
export interface DeploymentShape {
  metadata?: {
    name?: string;
    generation?: number;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  spec?: { replicas?: number; paused?: boolean };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }>;
  };
}

export interface RolloutState {
  progress: RolloutProgress;
  /** The Progressing condition says ProgressDeadlineExceeded: the rollout will not finish by itself. */
  stalled: boolean;
  /**
   * spec.paused, seen by the controller, with the rollout unfinished: the controller neither moves it nor
   * applies the progress deadline, so it would wait for ever.
   */
  paused: boolean;
}

/**
 * Judges a rollout the way `kubectl rollout status` does. "scale" additionally waits until exactly the desired
 * number of pods run and are available, since a scale-down leaves no "old" replicas to count.
 */
export function toRolloutState(
  deployment: DeploymentShape,
  mode: "rollout" | "scale" = "rollout",
): RolloutState {
  const desired = deployment.spec?.replicas ?? 1;
  const status = deployment.status ?? {};
  const updated = status.updatedReplicas ?? 0;
  const available = status.availableReplicas ?? 0;
  const total = status.replicas ?? 0;
  const observed = (deployment.metadata?.generation ?? 0) <= (status.observedGeneration ?? 0);
  const snapshot = (message: string, done: boolean): RolloutProgress => ({
    observed,
    desired,
    updated,
    available,
    total,
    message,
    done,
  });
  if (!observed) {
    return {
      progress: snapshot("waiting for the deployment controller to see the change", false),
      stalled: false,
      paused: false,
    };
  }
  const progressing = status.conditions?.find((c) => c.type === "Progressing");
  if (progressing?.reason === "ProgressDeadlineExceeded") {
    return {
      progress: snapshot(
        `exceeded its progress deadline: ${updated} of ${desired} replicas updated, ${available} available`,
        false,
      ),
      stalled: true,
      paused: false,
    };
  }
  let message: string | undefined;
  if (updated < desired) message = `${updated} of ${desired} new replicas updated`;
  else if (total > updated) message = `${total - updated} old replicas pending termination`;
  else if (available < updated) message = `${available} of ${updated} updated replicas are available`;
  else if (mode === "scale" && (total !== desired || available < desired)) {
    message = `${available} of ${desired} replicas available, ${total} running`;
  }
  if (message !== undefined) {
    return { progress: snapshot(message, false), stalled: false, paused: deployment.spec?.paused === true };
  }
  return {
    progress: snapshot(`all ${desired} replicas updated and available`, true),
    stalled: false,
    paused: false,
  };
}
