import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { auditMaxLength } from "../audit/audit-log.ts";
import { toBreakGlassCardId } from "../core/break-glass.ts";
import { type JobPhase, terminalPhases } from "../core/model.ts";
import type { Keys } from "../queue/keys.ts";
import { wakeJob } from "../queue/ops-queue.ts";
import { stateTtlMs } from "./status-store.ts";
import { durationsKept, interimCardDelayMs, transitionLua } from "./transition-lua.ts";

/**
 * Turns what BullMQ records about the operations queue into shipbot's own records, off the hot path:
 * an "added" event becomes the job's queued state (its first card and audit entry), a "completed" or
 * "failed" event its final state, history and audit entry. It then frees the target's lease and wakes
 * the next job in line.
 *
 * It reads BullMQ's event stream through a consumer group, so several processes share the work, each
 * event is handled once, and an event whose reader died is claimed by another. The scripts are
 * idempotent (a final state is final; queued is only ever a first state), so handling an event twice
 * changes nothing. If events were trimmed before being read, a sweep over BullMQ's finished sets
 * recovers every final state.
 */
const addedScript = `${transitionLua}
-- Most jobs are running or done before their "added" event is read (the worker's fetch records them):
-- "queued" is only ever a first state, and without an approval there is no break-glass entry to write.
local h = redis.call('HMGET', KEYS[1], 'phase', 'approvedBy')
if h[1] and h[1] ~= 'approved' and not h[2] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local now = nowMs()
local seq, meta = transition(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], 'queued', 'Queued', now, ${interimCardDelayMs}, ARGV[2], ARGV[3], {}, {})
-- An approved break-glass request is now queued: into the ledger, and its post to the audit channel
-- (unless the worker started the job first and wrote them then).
breakGlassApproved(KEYS[1], KEYS[3], KEYS[4], ARGV[1], now, ARGV[2])
return seq
`;

const finishedScript = `${transitionLua}
local state, bullJob, audit, cards = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local jobId, event, value, auditMax, ttl, historyPrefix, leasePrefix, linePrefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local durationsPrefix, breakGlassCard = ARGV[9], ARGV[10]
local now = nowMs()
local phase, text, sets = 'failed', 'Failed: ' .. value, { 'finishedAt', tostring(now) }
local finishedAt = now
-- The commit's time, when GitHub named it: the ledger's lead time for changes starts there.
local extra = {}
if event == 'completed' then
  local ok, rv = pcall(cjson.decode, value)
  if ok and type(rv) == 'table' and terminal[rv.phase] then
    phase, text = rv.phase, tostring(rv.text or rv.phase)
    finishedAt = tonumber(rv.finishedAt) or now
    sets = { 'finishedAt', tostring(finishedAt) }
    if rv.fromImage then table.insert(sets, 'fromImage'); table.insert(sets, tostring(rv.fromImage)) end
    if rv.toImage then table.insert(sets, 'toImage'); table.insert(sets, tostring(rv.toImage)) end
    if rv.sha and rv.committedAt then extra = { 'sha', tostring(rv.sha), 'committedAt', tostring(rv.committedAt) } end
  else
    phase, text = 'succeeded', 'Done'
  end
end
local seq, meta = transition(state, bullJob, audit, cards, jobId, phase, text, now, 0, auditMax, ttl, sets, { 'position' }, extra)
-- One read for what follows: the image, the start, a passed freeze and the target.
local toImage, startedAt, breakGlassFreeze, svc, env = unpack(redis.call('HMGET', state, 'toImage', 'startedAt', 'breakGlassFreeze', 'service', 'env'))
if seq > 0 and (phase == 'succeeded' or phase == 'failed') then
  recordHistory(historyPrefix, state, meta, jobId, phase, toImage, now)
  -- How long it held the target: the queue's ETAs come from the last 20 of these.
  local started = tonumber(startedAt or '')
  if started and meta[2] and meta[2] ~= '' then
    pushCapped(durationsPrefix .. meta[2] .. ':' .. meta[3], (meta[1] or '') .. ':' .. math.max(0, finishedAt - started), ${durationsKept})
  end
end
-- A break-glass run's post in the audit channel shows how it ended (edited in place).
if seq > 0 and breakGlassFreeze then redis.call('ZADD', cards, now, breakGlassCard) end
if not svc then return false end
local lease = leasePrefix .. svc .. ':' .. env
local holder = redis.call('GET', lease)
if holder and string.match(holder, '^([^|]+)|') == jobId then redis.call('DEL', lease) end
local head = redis.call('ZRANGE', linePrefix .. svc .. ':' .. env, 0, 0)
if #head == 0 then return false end
return string.match(head[1], '|([^|]+)$')
`;

type DeriverRedis = Redis & {
  shipbotDeriveAdded(...args: Array<string | number>): Promise<number>;
  shipbotDeriveFinished(...args: Array<string | number>): Promise<string | null>;
};

/** In a pipeline, script calls queue up and return the pipeline, not a promise. */
type DeriverPipeline = {
  shipbotDeriveAdded(...args: Array<string | number>): unknown;
  shipbotDeriveFinished(...args: Array<string | number>): unknown;
};

const group = "shipbot-deriver";
const batch = 500;

export interface DeriverOptions {
  /** A connection of its own: the reader blocks on it. */
  redis: Redis;
  keys: Keys;
  /** The operations queue, to wake the next job in a target's line. */
  queue: Queue;
  log: Logger;
  consumer: string;
  blockMs?: number;
  /** How long a read event may stay unacknowledged before another reader takes it over (default 30 s). */
  claimIdleMs?: number;
  /** Reads between two checks for events trimmed before any reader got them (default 50). */
  lossCheckEvery?: number;
}

export interface Deriver {
  close(): Promise<void>;
}

function fieldsOf(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

export function createDeriver(options: DeriverOptions): Deriver {
  const { redis, keys, queue, log } = options;
  const r = redis as DeriverRedis;
  if (typeof r.shipbotDeriveAdded !== "function") {
    redis.defineCommand("shipbotDeriveAdded", { numberOfKeys: 4, lua: addedScript });
    redis.defineCommand("shipbotDeriveFinished", { numberOfKeys: 4, lua: finishedScript });
  }
  let stopped = false;
  let sweepNeeded = true;

  async function ensureGroup(): Promise<void> {
    try {
      await redis.xgroup("CREATE", keys.opsEvents, group, "0", "MKSTREAM");
    } catch (error) {
      if (!String(error).includes("BUSYGROUP")) throw error;
    }
  }

  /** Arguments of the finished script for one job: its keys, then the event and its value. */
  const finishedArgs = (
    jobId: string,
    event: "completed" | "failed",
    value: string,
  ): Array<string | number> => [
    keys.job(jobId),
    keys.bullJob(jobId),
    keys.audit,
    keys.cards,
    jobId,
    event,
    value,
    auditMaxLength,
    stateTtlMs,
    keys.historyPrefix,
    keys.lease("", "").slice(0, -1),
    keys.line("", "").slice(0, -1),
    keys.durationsPrefix,
    toBreakGlassCardId("ran", jobId),
  ];

  /** Applies one batch of events in a single pipeline, acknowledges them, and wakes waiting jobs. */
  async function apply(entries: Array<[string, string[]]>): Promise<void> {
    const pipeline = redis.pipeline();
    let scripts = 0;
    for (const [, flat] of entries) {
      // An entry trimmed while pending comes back without fields; the sweep covers what it said.
      if (!Array.isArray(flat)) {
        sweepNeeded = true;
        continue;
      }
      const f = fieldsOf(flat);
      const jobId = f.jobId;
      if (!jobId) continue;
      const shared = [keys.job(jobId), keys.bullJob(jobId), keys.audit, keys.cards, jobId];
      if (f.event === "added") {
        (pipeline as unknown as DeriverPipeline).shipbotDeriveAdded(...shared, auditMaxLength, stateTtlMs);
        scripts++;
      } else if (f.event === "completed" || f.event === "failed") {
        const value = f.event === "completed" ? (f.returnvalue ?? "") : (f.failedReason ?? "unknown failure");
        (pipeline as unknown as DeriverPipeline).shipbotDeriveFinished(
          ...finishedArgs(jobId, f.event, value),
        );
        scripts++;
      }
    }
    if (scripts > 0) {
      const results = (await pipeline.exec()) ?? [];
      for (const [error, value] of results) {
        if (error) log.error({ err: error }, "could not derive a job's state from its event");
        else if (typeof value === "string" && value !== "") {
          void wakeJob(queue, value, log);
        }
      }
    }
    const ids = entries.map(([id]) => id);
    if (ids.length > 0) await redis.xack(keys.opsEvents, group, ...ids);
  }

  /**
   * Final states for jobs whose events were trimmed before anyone read them: every job in BullMQ's
   * finished sets (kept a day, at most 10,000 each) whose state is not final yet, a page at a time, each
   * page in three round trips (phases, then BullMQ's outcomes, then the scripts).
   */
  async function sweep(): Promise<void> {
    const page = 1_000;
    for (const set of ["completed", "failed"] as const) {
      const field = set === "completed" ? "returnvalue" : "failedReason";
      for (let start = 0; !stopped; start += page) {
        const ids = await redis.zrevrange(`${keys.bullPrefix}${set}`, start, start + page - 1);
        if (ids.length === 0) break;
        const phases = await pipelined(ids, (p, id) => p.hget(keys.job(id), "phase"));
        const open = ids.filter((_, i) => !terminalPhases.has(phases[i] as JobPhase));
        const values = await pipelined(open, (p, id) => p.hget(keys.bullJob(id), field));
        const due = open.flatMap((id, i) =>
          typeof values[i] === "string" ? [[id, values[i]] as const] : [],
        );
        if (due.length > 0) {
          const pipeline = redis.pipeline() as unknown as DeriverPipeline & { exec(): Promise<unknown> };
          for (const [id, value] of due) pipeline.shipbotDeriveFinished(...finishedArgs(id, set, value));
          await pipeline.exec();
        }
        if (ids.length < page) break;
      }
    }
  }

  /** One command per id in one round trip; a failed command reads as null. */
  async function pipelined(
    ids: string[],
    add: (pipeline: ReturnType<Redis["pipeline"]>, id: string) => unknown,
  ): Promise<unknown[]> {
    if (ids.length === 0) return [];
    const pipeline = redis.pipeline();
    for (const id of ids) add(pipeline, id);
    return ((await pipeline.exec()) ?? []).map(([error, value]) => (error ? null : value));
  }

  async function readOnce(blockMs: number): Promise<number> {
    // Entries another reader took but never acknowledged (it died) come first.
    const claimed = (await redis.xautoclaim(
      keys.opsEvents,
      group,
      options.consumer,
      options.claimIdleMs ?? 30_000,
      "0",
      "COUNT",
      batch,
    )) as [string, Array<[string, string[]] | null>];
    const stale = (claimed[1] ?? []).filter((e): e is [string, string[]] => Array.isArray(e));
    if (stale.length > 0) await apply(stale);
    const reply = (await redis.call(
      "XREADGROUP",
      "GROUP",
      group,
      options.consumer,
      "COUNT",
      batch,
      ...(blockMs > 0 ? ["BLOCK", blockMs] : []),
      "STREAMS",
      keys.opsEvents,
      ">",
    )) as unknown[] | null;
    // One stream comes back as [[name, entries]] over RESP2 and as [name, entries] over RESP3.
    const first = reply?.[0];
    const raw = Array.isArray(first) ? first[1] : reply?.[1];
    const entries = (Array.isArray(raw) ? raw : []) as Array<[string, string[]]>;
    if (entries.length > 0) await apply(entries);
    return entries.length + stale.length;
  }

  /**
   * Events trimmed before any reader got them, counted from the group's lag. Redis counts the lag as
   * entries added minus entries delivered, so an entry trimmed unread stays in it for good: once the
   * group has delivered everything there is, its lag is exactly the number lost so far; before that,
   * the lag beyond the stream's length is the least that can have been lost. A count above the last one
   * seen, or a lag Redis cannot tell (entries deleted mid-stream), means a sweep. The first check
   * only takes the count: the start-up sweep covers what was lost before it.
   */
  let lostSeen: number | undefined;
  let lagUnknown = false;
  async function checkLoss(): Promise<void> {
    const replies =
      (await redis.multi().xinfo("GROUPS", keys.opsEvents).xinfo("STREAM", keys.opsEvents).exec()) ?? [];
    const [groups, info] = replies.map(([error, value]) => {
      if (error) throw error;
      return value as unknown[];
    });
    const row = ((groups ?? []) as unknown[][])
      .map((g) => fieldsOf(g.map(String)))
      .find((g) => g.name === group);
    // Entries come back as arrays among the stream's fields: blanks keep the pairs in step.
    const stream = fieldsOf((info ?? []).map((v) => (Array.isArray(v) ? "" : String(v))));
    if (!row) return;
    const lag = Number.parseInt(row.lag ?? "", 10);
    const first = lostSeen === undefined;
    if (Number.isNaN(lag)) {
      if (!lagUnknown && !first) sweepNeeded = true;
      lagUnknown = true;
      lostSeen ??= 0;
      return;
    }
    lagUnknown = false;
    const lost =
      row["last-delivered-id"] === stream["last-generated-id"]
        ? lag
        : Math.max(0, lag - Number(stream.length ?? 0));
    if (!first && lost > (lostSeen ?? 0)) {
      log.warn(
        { lost: lost - (lostSeen ?? 0) },
        "events were trimmed before any reader got them; sweeping finished jobs",
      );
      sweepNeeded = true;
    }
    lostSeen = Math.max(lostSeen ?? 0, lost);
  }

  const loop = (async () => {
    let grouped = false;
    let rounds = 0;
    const checkEvery = options.lossCheckEvery ?? 50;
    while (!stopped) {
      try {
        // Inside the loop's handling: a Redis that is away at start (or a shutdown meanwhile) is retried
        // or ends the loop, never an unhandled rejection.
        if (!grouped) {
          await ensureGroup();
          grouped = true;
        }
        // The count is taken before the start-up sweep, so a loss after it is seen as one.
        if (lostSeen === undefined) await checkLoss();
        if (sweepNeeded) {
          sweepNeeded = false;
          await sweep();
        }
        await readOnce(options.blockMs ?? 1_000);
        if (++rounds % checkEvery === 0) await checkLoss();
      } catch (error) {
        if (stopped) break;
        log.warn({ err: error }, "deriver could not read the event stream; retrying");
        if (String(error).includes("NOGROUP")) await ensureGroup().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  })();

  return {
    async close() {
      stopped = true;
      redis.disconnect();
      await loop.catch(() => undefined);
    },
  };
}
