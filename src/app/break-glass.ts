import type { Redis } from "ioredis";
import type { AuditLog } from "../audit/audit-log.ts";
import { toBreakGlassCardId } from "../core/break-glass.ts";
import type { JobSpec } from "../core/command-module.ts";
import type { Config } from "../core/config.ts";
import { ShipbotError } from "../core/errors.ts";
import { activeFreeze, describeFreeze } from "../core/freeze-windows.ts";
import type { ChatUser } from "../core/model.ts";
import type { Keys } from "../queue/keys.ts";
import type { Hold } from "./apply-control.ts";

/**
 * The freeze a break-glass deploy would pass, or a usage error when nothing is frozen: outside a freeze
 * a deploy goes the ordinary way, and the audit channel only hears of real emergencies.
 */
export async function describeFreezeInForce(
  redis: Redis,
  keys: Keys,
  config: Config,
  env: string,
  now: number,
): Promise<string> {
  const scheduled = activeFreeze(config, env, now);
  if (scheduled) return describeFreeze(scheduled, env);
  const raw = await redis.hget(keys.freezes, env);
  const hold = raw ? (JSON.parse(raw) as Hold) : undefined;
  if (hold && (hold.until === undefined || hold.until > now))
    return `${env} is frozen by ${hold.by}${hold.reason ? `: ${hold.reason}` : ""}`;
  throw new ShipbotError(
    "usage",
    `${env} is not frozen: deploy without --break-glass (it follows ${env}'s usual approval)`,
  );
}

/**
 * A break-glass request went out: into the ledger, and its post marked for the audit channel (the
 * notifier renders it from the request's state, see create-break-glass-cards.ts).
 */
export async function recordBreakGlassRequest(
  deps: { redis: Redis; keys: Keys; audit: AuditLog },
  jobId: string,
  spec: JobSpec,
  user: ChatUser,
  freeze: string,
  now: number,
): Promise<void> {
  await deps.audit.append("breakglass.requested", {
    actor: user.id,
    job: jobId,
    service: spec.target.service,
    env: spec.target.env,
    version: spec.version,
    reason: spec.breakGlass?.reason,
    freeze,
  });
  await deps.redis.zadd(deps.keys.cards, now, toBreakGlassCardId("requested", jobId));
}
