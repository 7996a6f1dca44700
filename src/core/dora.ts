import { type Card, createCard } from "./card.ts";

/** One finished operation, as the audit ledger records it. */
export interface LedgerOperation {
  at: number;
  kind: string;
  service: string;
  env: string;
  phase: "succeeded" | "failed";
  /** deploy with GitHub: when the deployed commit was committed (ms). */
  committedAt?: number;
}

/** One alert turning on or off, as the audit ledger records it. */
export interface LedgerAlert {
  fingerprint: string;
  service: string;
  env: string;
  status: "firing" | "resolved";
  /** When it started firing (firing) or stopped (resolved), ms. */
  at: number;
  /** At or above the incident severity (the caller decides from the configuration). */
  critical: boolean;
}

export interface DoraFigures {
  days: number;
  deploys: number;
  /** Successful deploys per day. */
  deploysPerDay: number;
  /** Successful deploys that failed: rolled back, or followed by a critical alert, within the window. */
  failedChanges: number;
  /** Of those, the ones a critical alert of the target revealed (the rest were rolled back). */
  alertFailures: number;
  /** failedChanges ÷ deploys, or undefined without deploys. */
  changeFailureRate: number | undefined;
  /**
   * Median time to restore, in ms: from the deploy to the rollback for a change that was rolled back;
   * from the alert firing to it resolving or a rollback, whichever came first, for an alert. Failures
   * not restored yet are left out.
   */
  medianTimeToRestoreMs: number | undefined;
  /** Median time from commit to deploy finished, over deploys whose commit time is recorded. */
  medianLeadTimeMs: number | undefined;
  /** Deploys with a recorded commit time. */
  leadTimeSamples: number;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/**
 * DORA figures from the ledger, per service (and environment when given). Pure: the caller reads the
 * ledger and passes the clock. A change failed when, within `windowMs` of it and before the next deploy
 * or rollback of its target, the target was rolled back or a critical alert of its service×environment
 * started firing.
 */
export function computeDora(
  operations: LedgerOperation[],
  scope: { service: string; env?: string },
  now: number,
  days: number,
  windowMs: number,
  alerts: LedgerAlert[] = [],
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
  const leads: number[] = [];
  let failed = 0;
  let byAlert = 0;
  for (const deploy of deploys) {
    if (deploy.committedAt !== undefined && deploy.committedAt <= deploy.at)
      leads.push(deploy.at - deploy.committedAt);
    const next = relevant.find(
      (o) =>
        o.at > deploy.at &&
        o.env === deploy.env &&
        o.phase === "succeeded" &&
        (o.kind === "deploy" || o.kind === "rollback"),
    );
    const until = Math.min(deploy.at + windowMs, next?.at ?? Number.POSITIVE_INFINITY);
    const fired = alerts
      .filter(
        (a) =>
          a.critical &&
          a.status === "firing" &&
          a.service === deploy.service &&
          a.env === deploy.env &&
          a.at > deploy.at &&
          a.at <= until,
      )
      .sort((a, b) => a.at - b.at)[0];
    if (fired) {
      failed++;
      byAlert++;
      const resolved = alerts
        .filter((a) => a.status === "resolved" && a.fingerprint === fired.fingerprint && a.at >= fired.at)
        .reduce((m, a) => Math.min(m, a.at), Number.POSITIVE_INFINITY);
      const rolledBack = relevant
        .filter((o) => o.kind === "rollback" && o.phase === "succeeded" && o.env === deploy.env)
        .filter((o) => o.at >= fired.at)
        .reduce((m, o) => Math.min(m, o.at), Number.POSITIVE_INFINITY);
      const end = Math.min(resolved, rolledBack);
      if (Number.isFinite(end)) restores.push(end - fired.at);
    } else if (next?.kind === "rollback" && next.at - deploy.at <= windowMs) {
      failed++;
      restores.push(next.at - deploy.at);
    }
  }
  return {
    days,
    deploys: deploys.length,
    deploysPerDay: deploys.length / days,
    failedChanges: failed,
    alertFailures: byAlert,
    changeFailureRate: deploys.length === 0 ? undefined : failed / deploys.length,
    medianTimeToRestoreMs: median(restores),
    medianLeadTimeMs: median(leads),
    leadTimeSamples: leads.length,
  };
}

function formatSpan(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h` : `${(hours / 24).toFixed(1)} days`;
}

/** The `dora` answer. */
export function renderDoraCard(
  d: DoraFigures,
  query: { service: string; env?: string },
  windowMinutes: number,
): Card {
  const card = createCard(
    "info",
    `DORA for ${query.service}${query.env ? ` in ${query.env}` : ""}, last ${d.days} days`,
  );
  const window = windowMinutes === 1440 ? "a day" : formatSpan(windowMinutes * 60_000);
  card.lines.push(`Deployment frequency: ${d.deploys} deploys, ${d.deploysPerDay.toFixed(2)} a day`);
  const rolledBack = d.failedChanges - d.alertFailures;
  const causes = [
    ...(rolledBack > 0 || d.alertFailures === 0 ? [`${rolledBack} rolled back`] : []),
    ...(d.alertFailures > 0 ? [`${d.alertFailures} followed by a critical alert`] : []),
  ];
  card.lines.push(
    `Change failure rate: ${d.changeFailureRate === undefined ? "no deploys" : `${Math.round(d.changeFailureRate * 100)}% (${causes.join(", ")} within ${window})`}`,
  );
  card.lines.push(
    `Time to restore (median): ${d.medianTimeToRestoreMs === undefined ? (d.failedChanges === 0 ? "no failed changes" : "not restored yet") : formatSpan(d.medianTimeToRestoreMs)}`,
  );
  card.lines.push(
    d.medianLeadTimeMs === undefined
      ? "Lead time for changes: not recorded (needs GitHub for this service: commit times come from it)"
      : `Lead time for changes (median): ${formatSpan(d.medianLeadTimeMs)} from commit to deployed, over ${d.leadTimeSamples} of ${d.deploys} deploys`,
  );
  return card;
}
