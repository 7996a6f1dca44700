import type { Redis } from "ioredis";
import type { AuditLog } from "../audit/audit-log.ts";
import { type Card, createCard } from "../core/card.ts";
import type { Control } from "../core/command-module.ts";
import type { Config } from "../core/config.ts";
import { ShipbotError } from "../core/errors.ts";
import type { ChatUser } from "../core/model.ts";
import type { Keys } from "../queue/keys.ts";
import type { OpsQueue } from "../queue/ops-queue.ts";

/** What is stored for a lock or an ad hoc freeze; the acquire script reads it when a job starts. */
export interface Hold {
  by: string;
  byId: string;
  reason?: string;
  /** Freezes only: when it ends by itself (ms since the epoch). */
  until?: number;
  at: number;
}

function describe(hold: Hold): string {
  const until = hold.until
    ? ` until ${new Date(hold.until).toISOString().slice(0, 16).replace("T", " ")} UTC`
    : "";
  return `by ${hold.by}${until}${hold.reason ? `: ${hold.reason}` : ""}`;
}

/** A freeze in words with its end said even when it has none, for naming one that was replaced. */
function describeFreezeHold(hold: Hold): string {
  return hold.until === undefined
    ? `by ${hold.by} with no end${hold.reason ? `: ${hold.reason}` : ""}`
    : describe(hold);
}

/**
 * Sets a lock or a freeze unless someone else's is in force there, in one step so that two people
 * acting at once cannot both be told theirs took. Someone else's lock is never replaced; someone
 * else's freeze only by one that lasts at least as long (no end, or an end not earlier), because a
 * freeze that anyone could shorten by freezing again would protect nothing. Shortening one takes an
 * explicit `unfreeze`, whose answer and ledger entry name the holder. The holder's own hold, and one
 * that has ended by itself, are replaced freely.
 * A lock on one service and a lock on every service of the same environment cover the same jobs, so
 * someone else's lock on the other refuses a lock too ("covered", with that lock and its field): a lock
 * on a service under someone's lock on every service would otherwise look like a way round it.
 * Returns "set", "held"/"replaced" with the hold that was there, or "covered".
 */
const setHoldScript = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local held = cjson.decode(current)
  local heldUntil = tonumber(held['until'])
  local inForce = held['byId'] ~= ARGV[3] and (heldUntil == nil or heldUntil > tonumber(ARGV[5]))
  if inForce then
    if ARGV[4] == 'lock' then return {'held', current} end
    local newUntil = tonumber(ARGV[6])
    if newUntil ~= nil and (heldUntil == nil or newUntil < heldUntil) then return {'held', current} end
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    return {'replaced', current}
  end
end
if ARGV[4] == 'lock' then
  -- Fields are "<service|*>:<env>" and neither name holds a colon.
  local service, env = string.match(ARGV[1], '^(.*):([^:]+)$')
  local whole = '*:' .. env
  if service ~= '*' then
    local other = redis.call('HGET', KEYS[1], whole)
    if other and cjson.decode(other)['byId'] ~= ARGV[3] then return {'covered', other, whole} end
  else
    -- Locks are few (one per locked target), so reading them all costs little and is rare.
    local all = redis.call('HGETALL', KEYS[1])
    for i = 1, #all, 2 do
      local f = all[i]
      if f ~= whole and string.sub(f, -#env - 1) == ':' .. env and cjson.decode(all[i + 1])['byId'] ~= ARGV[3] then
        return {'covered', all[i + 1], f}
      end
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {'set'}
`;

type HoldRedis = Redis & {
  shipbotSetHold(
    hash: string,
    field: string,
    hold: string,
    byId: string,
    kind: "lock" | "freeze",
    now: number,
    until: string,
  ): Promise<[string, string?, string?]>;
};

interface SetHoldResult {
  outcome: "set" | "held" | "replaced" | "covered";
  /** The other person's hold it met. */
  previous?: Hold;
  /** For "covered": the field of the lock that covers the same target ("*:<env>" or "<service>:<env>"). */
  covering?: string;
}

/** Sets `hold` at `field` of `hash` by the rule above. */
async function setHold(
  redis: Redis,
  hash: string,
  field: string,
  hold: Hold,
  kind: "lock" | "freeze",
  now: number,
): Promise<SetHoldResult> {
  const r = redis as HoldRedis;
  if (typeof r.shipbotSetHold !== "function")
    redis.defineCommand("shipbotSetHold", { numberOfKeys: 1, lua: setHoldScript });
  const [outcome, raw, covering] = await r.shipbotSetHold(
    hash,
    field,
    JSON.stringify(hold),
    hold.byId,
    kind,
    now,
    hold.until === undefined ? "" : String(hold.until),
  );
  const result: SetHoldResult = { outcome: outcome as SetHoldResult["outcome"] };
  if (raw !== undefined) result.previous = JSON.parse(raw) as Hold;
  if (covering !== undefined) result.covering = covering;
  return result;
}

/** "every service in staging" or "api in staging", for a lock's service (or `*`) and environment. */
function describeTarget(service: string, env: string): string {
  return `${service === "*" ? "every service" : service} in ${env}`;
}

/**
 * Why a lock was refused: someone else's lock on the same target, or one on the other scope of the
 * same environment (every service, or one of its services), named with the `unlock` that lifts it.
 */
function lockRefusal(service: string, env: string, previous: Hold, covering?: string): string {
  if (covering === undefined)
    return `${describeTarget(service, env)} is already locked ${describe(previous)}; to take it over, \`unlock ${service} ${env}\` first`;
  const [other = "*"] = covering.split(":");
  return `${describeTarget(other, env)} is already locked ${describe(previous)}; to lock ${describeTarget(service, env)}, \`unlock ${other} ${env}\` first`;
}

export interface ControlDeps {
  redis: Redis;
  keys: Keys;
  config: Config;
  ops: Pick<OpsQueue, "wakeLine">;
  audit: AuditLog;
}

/**
 * Locks and freezes are checked where jobs run (inside the acquire script, no extra round trip), so a
 * blocked job waits in its line with the reason on its card instead of failing. Releasing one wakes
 * the jobs that waited.
 */
export async function applyControl(
  control: Control,
  user: ChatUser,
  now: number,
  deps: ControlDeps,
): Promise<Card> {
  const { redis, keys, config, ops, audit } = deps;
  const hold: Hold = { by: user.name, byId: user.id, at: now };
  const targets = (service: string, env: string): string[] =>
    service === "*"
      ? Object.keys(config.services).filter((s) => config.services[s]?.environments[env])
      : [service];
  switch (control.kind) {
    case "lock": {
      if (control.reason) hold.reason = control.reason;
      const field = `${control.service}:${control.env}`;
      const set = await setHold(redis, keys.locks, field, hold, "lock", now);
      // A refusal like any other: the person is told whose lock it is, and the ledger records it refused.
      if (set.previous && (set.outcome === "held" || set.outcome === "covered"))
        throw new ShipbotError(
          "conflict",
          lockRefusal(control.service, control.env, set.previous, set.covering),
        );
      await audit.append("lock", {
        actor: user.id,
        service: control.service,
        env: control.env,
        reason: control.reason,
      });
      return createCard("warning", `🔒 Locked ${describeTarget(control.service, control.env)}`, [
        `Operations by others wait until \`unlock ${control.service} ${control.env}\`.${hold.reason ? ` Reason: ${hold.reason}` : ""}`,
      ]);
    }
    case "unlock": {
      const field = `${control.service}:${control.env}`;
      // Read and removed in one transaction, so the holder named is the one whose lock ended.
      const replies = await redis.multi().hget(keys.locks, field).hdel(keys.locks, field).exec();
      const failed = replies?.find(([error]) => error)?.[0];
      if (failed) throw failed;
      const existing = replies?.[0]?.[1] as string | null | undefined;
      if (!replies?.[1]?.[1])
        return createCard("info", `${describeTarget(control.service, control.env)} was not locked`);
      // Someone else's lock: the answer and the ledger say whose it was, so the holder can be told.
      const holder = existing ? (JSON.parse(existing) as Hold) : undefined;
      const others = holder !== undefined && holder.byId !== user.id ? holder : undefined;
      await audit.append("unlock", {
        actor: user.id,
        service: control.service,
        env: control.env,
        holder: others?.byId,
      });
      for (const service of targets(control.service, control.env)) await ops.wakeLine(service, control.env);
      return createCard(
        "success",
        `🔓 Unlocked ${describeTarget(control.service, control.env)}`,
        others ? [`It was locked ${describe(others)}.`] : [],
      );
    }
    case "freeze": {
      if (control.reason) hold.reason = control.reason;
      if (control.until !== undefined) hold.until = control.until;
      const set = await setHold(redis, keys.freezes, control.env, hold, "freeze", now);
      if (set.previous && set.outcome === "held")
        throw new ShipbotError(
          "conflict",
          `${control.env} is already frozen ${describeFreezeHold(set.previous)}; a freeze can be extended, not shortened: \`unfreeze ${control.env}\` first`,
        );
      // Someone else's freeze, extended: the answer and the ledger say whose it was and when it was to end.
      const replaced = set.outcome === "replaced" ? set.previous : undefined;
      await audit.append("freeze", {
        actor: user.id,
        env: control.env,
        until: control.until,
        reason: control.reason,
        replaced: replaced?.byId,
        replacedUntil: replaced ? (replaced.until ?? "none") : undefined,
        replacedReason: replaced?.reason,
      });
      return createCard("warning", `🧊 Froze ${control.env} ${describe(hold)}`, [
        ...(replaced ? [`It replaces the freeze ${describeFreezeHold(replaced)}.`] : []),
        "Deploys and scaling wait; rollbacks still run.",
      ]);
    }
    case "unfreeze": {
      // Read and removed in one transaction, so the holder named is the one whose freeze ended.
      const replies = await redis
        .multi()
        .hget(keys.freezes, control.env)
        .hdel(keys.freezes, control.env)
        .exec();
      const failed = replies?.find(([error]) => error)?.[0];
      if (failed) throw failed;
      const existing = replies?.[0]?.[1] as string | null | undefined;
      if (!replies?.[1]?.[1]) return createCard("info", `${control.env} was not frozen`);
      // Someone else's freeze, still in force: say whose it was, as unlock does for a lock.
      const holder = existing ? (JSON.parse(existing) as Hold) : undefined;
      const others =
        holder !== undefined && holder.byId !== user.id && (holder.until === undefined || holder.until > now)
          ? holder
          : undefined;
      await audit.append("unfreeze", { actor: user.id, env: control.env, holder: others?.byId });
      for (const service of targets("*", control.env)) await ops.wakeLine(service, control.env);
      return createCard(
        "success",
        `Unfroze ${control.env}`,
        others ? [`It was frozen ${describeFreezeHold(others)}.`] : [],
      );
    }
  }
}

/**
 * Locks and ad hoc freezes in force, for `queue`; with `only`, those of that environment, matched by
 * the environment they hold (a lock's field, a freeze's key), never by the words of their reasons.
 */
export async function listHolds(redis: Redis, keys: Keys, now: number, only?: string): Promise<string[]> {
  const [locks, freezes] = await Promise.all([redis.hgetall(keys.locks), redis.hgetall(keys.freezes)]);
  const lines: string[] = [];
  for (const [field, raw] of Object.entries(locks)) {
    // "<service|*>:<env>": neither name may contain a colon.
    const [service, env] = field.split(":");
    if (only !== undefined && env !== only) continue;
    lines.push(
      `🔒 ${service === "*" ? "every service" : service} in ${env} locked ${describe(JSON.parse(raw) as Hold)}`,
    );
  }
  for (const [env, raw] of Object.entries(freezes)) {
    if (only !== undefined && env !== only) continue;
    const hold = JSON.parse(raw) as Hold;
    if (hold.until === undefined || hold.until > now) lines.push(`🧊 ${env} frozen ${describe(hold)}`);
  }
  return lines;
}
