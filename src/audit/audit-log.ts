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

const verifyPageSize = 1000;

/**
 * One page of the stream from `start` and the head hash, in one transaction. Read apart, an append
 * between the last page and the head (any busy bot makes several a second) would look like removed
 * entries.
 */
async function readVerifyPage(
  redis: Redis,
  audit: string,
  start: string,
): Promise<{ rows: Array<[string, string[]]>; head: string | null }> {
  const replies = await redis
    .multi()
    .xrange(audit, start, "+", "COUNT", verifyPageSize)
    .get(`${audit}:head`)
    .exec();
  const [page, head] = replies ?? [];
  const failed = page?.[0] ?? head?.[0];
  if (failed || !page || !head) throw failed ?? new Error("the audit page transaction was aborted");
  return { rows: page[1] as Array<[string, string[]]>, head: head[1] as string | null };
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
        const { rows, head } = await readVerifyPage(redis, keys.audit, start);
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
        if (rows.length === verifyPageSize) {
          start = `(${rows[rows.length - 1]?.[0]}`;
          continue;
        }
        // A short page was the tail when it was read, and the head was read with it: they must agree,
        // whatever other processes appended since.
        if (prevHash === undefined && head !== null) {
          return {
            ok: false,
            checked,
            broken: {
              id: "(all)",
              reason: "every entry was removed (the stream is empty but its head remains)",
            },
            trimmed,
          };
        }
        if (prevHash !== undefined && head !== prevHash) {
          return {
            ok: false,
            checked,
            broken: { id: "(end)", reason: "the newest entries were removed" },
            trimmed,
          };
        }
        return { ok: true, checked, trimmed };
      }
    },
  };
}
