/** One finished operation, as the audit ledger records it. */
export interface LedgerOperation {
  at: number;
  kind: string;
  service: string;
  env: string;
  phase: "succeeded" | "failed";
}

export interface DoraFigures {
  days: number;
  deploys: number;
  /** Successful deploys per day. */
  deploysPerDay: number;
  /** Successful deploys followed by a rollback of the same target within the window. */
  failedChanges: number;
  /** failedChanges ÷ deploys, or undefined without deploys. */
  changeFailureRate: number | undefined;
  /** Median time from a failed change to the rollback that restored it, in ms. */
  medianTimeToRestoreMs: number | undefined;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/**
 * DORA figures from the ledger, per service (and environment when given). Pure: the caller reads the
 * ledger and passes the clock. A change failed when its target was rolled back within `windowMs` of it,
 * before the next deploy of that target; the time to restore is from that deploy to the rollback.
 */
export function computeDora(
  operations: LedgerOperation[],
  scope: { service: string; env?: string },
  now: number,
  days: number,
  windowMs: number,
): DoraFigures {
  const since = now - days * 86_400_000;
  const relevant = operations
    .filter(
      (o) =>
        o.service === scope.service &&
        (scope.env === undefined || o.env === scope.env) &&
        o.at >= since &&
        o.at <= now,
    )
    .sort((a, b) => a.at - b.at);
  const deploys = relevant.filter((o) => o.kind === "deploy" && o.phase === "succeeded");
  const restores: number[] = [];
  for (const deploy of deploys) {
    const next = relevant.find(
      (o) =>
        o.at > deploy.at &&
        o.env === deploy.env &&
        o.phase === "succeeded" &&
        (o.kind === "deploy" || o.kind === "rollback"),
    );
    if (next?.kind === "rollback" && next.at - deploy.at <= windowMs) restores.push(next.at - deploy.at);
  }
  return {
    days,
    deploys: deploys.length,
    deploysPerDay: deploys.length / days,
    failedChanges: restores.length,
    changeFailureRate: deploys.length === 0 ? undefined : restores.length / deploys.length,
    medianTimeToRestoreMs: median(restores),
  };
}
