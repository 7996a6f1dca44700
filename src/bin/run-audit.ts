import { createAuditLog } from "../audit/audit-log.ts";
import { loadConfig } from "../config/load-config.ts";
import type { Settings } from "../config/settings.ts";
import { createKeys } from "../queue/keys.ts";
import { createRedis } from "../queue/redis.ts";

/** "2026-11-01", "2026-11-01T10:00:00Z", or an age: "30m", "24h", "7d". */
export function parseSince(text: string, now: number): number | undefined {
  const age = /^(\d{1,6})([mhd])$/.exec(text);
  if (age)
    return now - Number(age[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as "m" | "h" | "d"];
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

/** `shipbot audit export|verify`: read the audit stream of the configured Redis. */
export async function runAudit(settings: Settings, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== "export" && verb !== "verify") {
    process.stderr.write("usage: shipbot audit export [--since <time>] | shipbot audit verify\n");
    return 2;
  }
  const config = await loadConfig(settings.configPath);
  const redis = createRedis({ url: settings.redisUrl, role: "worker" });
  const audit = createAuditLog(redis, createKeys(config.redisPrefix));
  try {
    if (verb === "verify") {
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
    let since = 0;
    const flagIndex = rest.indexOf("--since");
    if (flagIndex !== -1) {
      const value = rest[flagIndex + 1];
      const parsed = value === undefined ? undefined : parseSince(value, Date.now());
      if (parsed === undefined) {
        process.stderr.write(
          `shipbot: --since takes an ISO date (2026-11-01T10:00:00Z) or an age (30m, 24h, 7d), not "${value ?? ""}"\n`,
        );
        return 2;
      }
      since = parsed;
    }
    const written = await audit.read(since, (entries) => {
      for (const e of entries)
        process.stdout.write(
          `${JSON.stringify({ id: e.id, at: new Date(e.at).toISOString(), ...e.fields })}\n`,
        );
    });
    process.stderr.write(`exported ${written} audit entries\n`);
    return 0;
  } finally {
    redis.disconnect();
  }
}
