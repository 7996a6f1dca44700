import { type AuditLog, createAuditLog } from "../audit/audit-log.ts";
import { loadConfig } from "../config/load-config.ts";
import type { Settings } from "../config/settings.ts";
import { createKeys } from "../queue/keys.ts";
import { createRedis, waitForReady } from "../queue/redis.ts";

/** How long `audit` waits for Redis before saying it cannot reach it. */
const connectWaitMs = 5_000;

/** REDIS_URL without its password, for a message. */
function redactRedisUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//[redacted]@");
}

/** "2026-11-01", "2026-11-01T10:00:00Z", or an age: "30m", "24h", "7d". */
export function parseSince(text: string, now: number): number | undefined {
  const age = /^(\d{1,6})([mhd])$/.exec(text);
  if (age)
    return now - Number(age[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as "m" | "h" | "d"];
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

/** The `--since` of `audit export` as ms since the epoch (0 without it), or undefined when it is not a time. */
function parseSinceFlag(rest: string[], now: number): number | undefined {
  const flagIndex = rest.indexOf("--since");
  if (flagIndex === -1) return 0;
  const value = rest[flagIndex + 1];
  return value === undefined ? undefined : parseSince(value, now);
}

/** `shipbot audit export|verify`: read the audit stream of the configured Redis. */
export async function runAudit(settings: Settings, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== "export" && verb !== "verify") {
    process.stderr.write("usage: shipbot audit export [--since <time>] | shipbot audit verify\n");
    return 2;
  }
  // Checked before connecting: a typo is reported at once, whatever state Redis is in.
  const since = verb === "export" ? parseSinceFlag(rest, Date.now()) : 0;
  if (since === undefined) {
    const value = rest[rest.indexOf("--since") + 1];
    process.stderr.write(
      `shipbot: --since takes an ISO date (2026-11-01T10:00:00Z) or an age (30m, 24h, 7d), not "${value ?? ""}"\n`,
    );
    return 2;
  }
  const config = await loadConfig(settings.configPath);
  // Fail fast: a worker connection would wait for ever, silently, for a Redis that is not there.
  const redis = createRedis({ url: settings.redisUrl, role: "producer" });
  let lastError: Error | undefined;
  redis.on("error", (error: Error) => {
    lastError = error;
  });
  const audit = createAuditLog(redis, createKeys(config.redisPrefix));
  const where = redactRedisUrl(settings.redisUrl);
  try {
    if (!(await waitForReady(redis, connectWaitMs))) {
      process.stderr.write(
        `shipbot: cannot reach Redis at ${where} (${lastError?.message ?? `no answer in ${connectWaitMs / 1000} s`}); check REDIS_URL and that Redis is running\n`,
      );
      return 2;
    }
    return verb === "verify" ? await runVerify(audit) : await runExport(audit, since);
  } catch (error) {
    // Exit 2, not 1: 1 means the chain is broken, and a failed read says nothing about that.
    process.stderr.write(
      `shipbot: audit ${verb} stopped, reading Redis at ${where} failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 2;
  } finally {
    redis.disconnect();
  }
}

async function runVerify(audit: AuditLog): Promise<number> {
  const result = await audit.verify();
  const from = result.trimmed ? " (from the oldest entry kept; older ones were trimmed)" : "";
  if (result.ok) {
    process.stdout.write(`audit chain intact: ${result.checked} entries${from}\n`);
    return 0;
  }
  process.stdout.write(
    `audit chain broken at ${result.broken?.id}: ${result.broken?.reason} (${result.checked} entries checked before it)\n`,
  );
  return 1;
}

async function runExport(audit: AuditLog, since: number): Promise<number> {
  const written = await audit.read(since, (entries) => {
    for (const e of entries)
      process.stdout.write(
        `${JSON.stringify({ id: e.id, at: new Date(e.at).toISOString(), ...e.fields })}\n`,
      );
  });
  process.stderr.write(`exported ${written} audit entries\n`);
  return 0;
}
