import type { Redis } from "ioredis";
import { defaultAlertsConfig, isIncidentSeverity } from "../alerts/alerts-config.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import type { Config } from "../core/config.ts";
import type { LedgerAlert, LedgerOperation } from "../core/dora.ts";
import type { JobState } from "../core/model.ts";
import type { RunTime } from "../core/queue-eta.ts";
import { durationsKept } from "../notify/transition-lua.ts";
import type { Keys } from "../queue/keys.ts";

const num = (value: string | undefined): number | undefined => {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
};

/** Finished operations and alert changes recorded in the audit ledger since `sinceMs`, for `dora`. */
export async function readLedger(
  audit: AuditLog,
  config: Config,
  sinceMs: number,
): Promise<{ operations: LedgerOperation[]; alerts: LedgerAlert[] }> {
  const alertsConfig = config.alerts ?? defaultAlertsConfig;
  const operations: LedgerOperation[] = [];
  const alerts: LedgerAlert[] = [];
  await audit.read(sinceMs, (entries) => {
    for (const e of entries) {
      const f = e.fields;
      if (e.type === "job.succeeded" || e.type === "job.failed") {
        if (!f.service || !f.env || !f.kind) continue;
        const op: LedgerOperation = {
          at: num(f.at) ?? e.at,
          kind: f.kind,
          service: f.service,
          env: f.env,
          phase: e.type === "job.succeeded" ? "succeeded" : "failed",
        };
        const committedAt = num(f.committedAt);
        if (committedAt !== undefined) op.committedAt = committedAt;
        operations.push(op);
      } else if (e.type === "alert.firing" || e.type === "alert.resolved") {
        if (!f.service || !f.env || !f.fingerprint) continue;
        const firing = e.type === "alert.firing";
        alerts.push({
          fingerprint: f.fingerprint,
          service: f.service,
          env: f.env,
          status: firing ? "firing" : "resolved",
          // Alertmanager's own times when it gave them; otherwise when shipbot heard of it.
          at: (firing ? num(f.startsAt) : num(f.endsAt)) || (num(f.at) ?? e.at),
          critical: isIncidentSeverity(alertsConfig, f.severity),
        });
      }
    }
  });
  return { operations, alerts };
}

/** Recent run times of the targets these jobs wait for or run on, keyed "<service>:<env>". */
export async function readDurations(
  redis: Redis,
  keys: Keys,
  states: JobState[],
): Promise<Map<string, RunTime[]>> {
  const targets = [...new Set(states.map((s) => `${s.data.service}:${s.data.env}`))];
  const runs = new Map<string, RunTime[]>();
  if (targets.length === 0) return runs;
  const pipeline = redis.pipeline();
  for (const target of targets) {
    const [service = "", env = ""] = target.split(":");
    pipeline.lrange(keys.durations(service, env), 0, durationsKept - 1);
  }
  const results = (await pipeline.exec()) ?? [];
  targets.forEach((target, i) => {
    const rows = (results[i]?.[1] as string[] | undefined) ?? [];
    runs.set(
      target,
      rows.flatMap((row) => {
        const at = row.lastIndexOf(":");
        const ms = Number(row.slice(at + 1));
        return at > 0 && Number.isFinite(ms) ? [{ kind: row.slice(0, at), ms }] : [];
      }),
    );
  });
  return runs;
}
