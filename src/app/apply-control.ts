import type { Redis } from "ioredis";
import type { AuditLog } from "../audit/audit-log.ts";
import { type Card, createCard } from "../core/card.ts";
import type { Control } from "../core/command-module.ts";
import type { Config } from "../core/config.ts";
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
      const existing = await redis.hget(keys.locks, field);
      if (existing) {
        const current = JSON.parse(existing) as Hold;
        if (current.byId !== user.id)
          return createCard(
            "warning",
            `${field.replace(":", " in ")} is already locked ${describe(current)}`,
          );
      }
      await redis.hset(keys.locks, field, JSON.stringify(hold));
      await audit.append("lock", {
        actor: user.id,
        service: control.service,
        env: control.env,
        reason: control.reason,
      });
      const what =
        control.service === "*" ? `every service in ${control.env}` : `${control.service} in ${control.env}`;
      return createCard("warning", `🔒 Locked ${what}`, [
        `Operations by others wait until \`unlock ${control.service} ${control.env}\`.${hold.reason ? ` Reason: ${hold.reason}` : ""}`,
      ]);
    }
    case "unlock": {
      const field = `${control.service}:${control.env}`;
      const existing = await redis.hget(keys.locks, field);
      const removed = await redis.hdel(keys.locks, field);
      if (removed === 0)
        return createCard(
          "info",
          `${control.service === "*" ? "every service" : control.service} in ${control.env} was not locked`,
        );
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
        `🔓 Unlocked ${control.service === "*" ? "every service" : control.service} in ${control.env}`,
        others ? [`It was locked ${describe(others)}.`] : [],
      );
    }
    case "freeze": {
      if (control.reason) hold.reason = control.reason;
      if (control.until !== undefined) hold.until = control.until;
      await redis.hset(keys.freezes, control.env, JSON.stringify(hold));
      await audit.append("freeze", {
        actor: user.id,
        env: control.env,
        until: control.until,
        reason: control.reason,
      });
      return createCard("warning", `🧊 Froze ${control.env} ${describe(hold)}`, [
        "Deploys and scaling wait; rollbacks still run.",
      ]);
    }
    case "unfreeze": {
      const removed = await redis.hdel(keys.freezes, control.env);
      if (removed === 0) return createCard("info", `${control.env} was not frozen`);
      await audit.append("unfreeze", { actor: user.id, env: control.env });
      for (const service of targets("*", control.env)) await ops.wakeLine(service, control.env);
      return createCard("success", `Unfroze ${control.env}`);
    }
  }
}

/** Locks and ad hoc freezes in force, for `queue`. */
export async function listHolds(redis: Redis, keys: Keys, now: number): Promise<string[]> {
  const [locks, freezes] = await Promise.all([redis.hgetall(keys.locks), redis.hgetall(keys.freezes)]);
  const lines: string[] = [];
  for (const [field, raw] of Object.entries(locks)) {
    const [service, env] = field.split(":");
    lines.push(
      `🔒 ${service === "*" ? "every service" : service} in ${env} locked ${describe(JSON.parse(raw) as Hold)}`,
    );
  }
  for (const [env, raw] of Object.entries(freezes)) {
    const hold = JSON.parse(raw) as Hold;
    if (hold.until === undefined || hold.until > now) lines.push(`🧊 ${env} frozen ${describe(hold)}`);
  }
  return lines;
}
