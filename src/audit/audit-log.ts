import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { Keys } from "../queue/keys.ts";
import { auditAppendLua } from "./audit-lua.ts";

/** Bounds the stream so an alert storm cannot fill Redis; export it for longer retention. */
export const auditMaxLength = 100_000;

export interface AuditEntry {
  id: string;
  type: string;
  /** Milliseconds since the epoch, from the stream entry id. */
  at: number;
  fields: Record<string, string>;
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  /** The first entry whose link does not hold, and why. */
  broken?: { id: string; reason: string };
  /** True when the oldest entries were trimmed: the chain is checked from the oldest one kept. */
  trimmed: boolean;
}

export interface AuditLog {
  append(type: string, fields: Record<string, string | number | undefined>): Promise<string>;
  recent(count: number): Promise<AuditEntry[]>;
  /** Entries from `sinceMs` on, oldest first, in pages. */
  read(sinceMs: number, onPage: (entries: AuditEntry[]) => Promise<void> | void): Promise<number>;
  verify(): Promise<VerifyResult>;
}

const appendScript = `${auditAppendLua}
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
return auditAppend(KEYS[1], ARGV[1], fields)
`;

type AuditRedis = Redis & { shipbotAudit(audit: string, max: number, ...fields: string[]): Promise<string> };

function toEntry(id: string, flat: string[]): AuditEntry {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
  return { id, type: fields.type ?? "", at: Number(id.split("-")[0]), fields };
}

/** The hash an entry must carry: sha1 over the previous hash and its fields, as the append script computes it. */
export function chainHash(prev: string, flat: string[]): string {
  const body = flat.slice(4).join("\n");
  return createHash("sha1").update(`${prev}\n${body}`).digest("hex");
}

/**
 * The audit stream: commands, decisions and job transitions, hash-chained (see audit-lua.ts). Job
 * transitions are appended by the transition scripts; everything else through `append`.
 */
export function createAuditLog(redis: Redis, keys: Keys): AuditLog {
  const r = redis as AuditRedis;
  if (typeof r.shipbotAudit !== "function")
    redis.defineCommand("shipbotAudit", { numberOfKeys: 1, lua: appendScript });
  return {
    async append(type, fields) {
      const flat: string[] = ["type", type, "at", String(Date.now())];
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) flat.push(k, String(v));
      return r.shipbotAudit(keys.audit, auditMaxLength, ...flat);
    },
    async recent(count) {
      const rows = (await redis.xrevrange(keys.audit, "+", "-", "COUNT", count)) as Array<[string, string[]]>;
      return rows.map(([id, flat]) => toEntry(id, flat));
    },
    async read(sinceMs, onPage) {
      let start = `${Math.max(0, Math.floor(sinceMs))}-0`;
      let total = 0;
      for (;;) {
        const rows = (await redis.xrange(keys.audit, start, "+", "COUNT", 1000)) as Array<[string, string[]]>;
        if (rows.length === 0) return total;
        await onPage(rows.map(([id, flat]) => toEntry(id, flat)));
        total += rows.length;
        start = `(${rows[rows.length - 1]?.[0]}`;
      }
    },
    async verify() {
      let start = "-";
      let prevHash: string | undefined;
      let checked = 0;
      let trimmed = false;
      for (;;) {
        const rows = (await redis.xrange(keys.audit, start, "+", "COUNT", 1000)) as Array<[string, string[]]>;
        if (rows.length === 0) break;
        for (const [id, flat] of rows) {
          if (flat[0] !== "prev" || flat[2] !== "hash")
            return { ok: false, checked, broken: { id, reason: "entry has no chain fields" }, trimmed };
          const prev = flat[1] ?? "";
          const hash = flat[3] ?? "";
          if (prevHash === undefined) {
            // The oldest entry kept: its predecessor may have been trimmed.
            trimmed = prev !== "";
          } else if (prev !== prevHash) {
            return {
              ok: false,
              checked,
              broken: {
                id,
                reason: "does not follow the entry before it (an entry was removed or reordered)",
              },
              trimmed,
            };
          }
          if (chainHash(prev, flat) !== hash) {
            return {
              ok: false,
              checked,
              broken: { id, reason: "its content does not match its hash (it was changed)" },
              trimmed,
            };
          }
          prevHash = hash;
          checked++;
        }
        start = `(${rows[rows.length - 1]?.[0]}`;
      }
      const head = await redis.get(`${keys.audit}:head`);
      if (prevHash !== undefined && head !== prevHash) {
        return {
          ok: false,
          checked,
          broken: { id: "(end)", reason: "the newest entries were removed" },
          trimmed,
        };
      }
      return { ok: true, checked, trimmed };
    },
  };
}
