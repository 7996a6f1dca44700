import type { Redis } from "ioredis";
import type { Keys } from "../queue/keys.ts";

/** Bounds the stream so an alert storm cannot fill Redis; export it for longer retention. */
export const auditMaxLength = 100_000;

export interface AuditEntry {
  id: string;
  type: string;
  fields: Record<string, string>;
}

export interface AuditLog {
  append(type: string, fields: Record<string, string | number | undefined>): Promise<string>;
  recent(count: number): Promise<AuditEntry[]>;
}

/** Commands and decisions go to a Redis Stream; job transitions are appended by the status script. */
export function createAuditLog(redis: Redis, keys: Keys): AuditLog {
  return {
    async append(type, fields) {
      const flat: string[] = ["type", type, "at", String(Date.now())];
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) flat.push(k, String(v));
      return (await redis.xadd(keys.audit, "MAXLEN", "~", auditMaxLength, "*", ...flat)) as string;
    },
    async recent(count) {
      const rows = (await redis.xrevrange(keys.audit, "+", "-", "COUNT", count)) as Array<[string, string[]]>;
      return rows.map(([id, flat]) => {
        const fields: Record<string, string> = {};
        for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
        return { id, type: fields.type ?? "", fields };
      });
    },
  };
}
