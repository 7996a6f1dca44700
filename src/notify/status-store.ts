import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { auditMaxLength } from "../audit/audit-log.ts";
import type { JobPhase, JobState } from "../core/model.ts";
import { terminalPhases } from "../core/model.ts";
import type { Keys } from "../queue/keys.ts";
import { signalCard } from "./create-notifier.ts";

/**
 * The latest state of every job, in Redis so any process can render its card. One script per
 * transition merges the change, bumps the sequence number, refuses to move a job out of a final
 * state, appends the transition to the audit stream and (for finished operations) to the target's
 * history: one round trip.
 */
const emitScript = `
local key, audit, history = KEYS[1], KEYS[2], KEYS[3]
local patch = cjson.decode(ARGV[1])
local terminal = { succeeded = true, failed = true, cancelled = true, superseded = true }
local prevRaw = redis.call('HGET', key, 'state')
local state = prevRaw and cjson.decode(prevRaw) or {}
if state.phase and terminal[state.phase] then return 0 end
-- "queued" is the first state only: a redelivered command must not move a running card back.
if patch.phase == 'queued' and state.phase then return 0 end
if patch.phase == state.phase and patch.text == state.text then return 0 end
for k, v in pairs(patch) do
  if v == cjson.null then state[k] = nil else state[k] = v end
end
local seq = redis.call('HINCRBY', key, 'seq', 1)
state.seq = seq
redis.call('HSET', key, 'state', cjson.encode(state))
redis.call('PEXPIRE', key, ARGV[2])
local data = state.data or {}
local by = data.requestedBy or {}
redis.call('XADD', audit, 'MAXLEN', '~', ARGV[3], '*', 'type', 'job.' .. state.phase, 'at', tostring(state.updatedAt),
  'job', state.jobId or '', 'kind', data.kind or '', 'service', data.service or '', 'env', data.env or '',
  'actor', by.id or '', 'text', state.text or '', 'trace', data.traceId or '')
if ARGV[4] ~= '' and terminal[state.phase] then
  redis.call('LPUSH', history, ARGV[4])
  redis.call('LTRIM', history, 0, 49)
end
return seq
`;

/** A finished operation, as `status` lists it. */
export interface HistoryEntry {
  jobId: string;
  kind: string;
  phase: JobPhase;
  image?: string;
  by: string;
  at: number;
}

export type StatePatch = Partial<Omit<JobState, "seq" | "jobId">> & { phase: JobPhase; text: string };

export interface StatusStore {
  /** Applies a change and wakes the notifier. Returns the new sequence number, or 0 if nothing changed. */
  emit(jobId: string, patch: StatePatch, nulls?: Array<keyof JobState>): Promise<number>;
  read(jobId: string): Promise<JobState | undefined>;
  history(service: string, env: string, count: number): Promise<HistoryEntry[]>;
}

type ScriptRedis = Redis & { shipbotEmit(...args: Array<string | number>): Promise<number> };

/** Kept for a week: long enough for any card edit or a late `status`. */
const stateTtlMs = 7 * 24 * 3600 * 1000;

export function createStatusStore(redis: Redis, keys: Keys, notifyQueue: Queue): StatusStore {
  const r = redis as ScriptRedis;
  if (typeof r.shipbotEmit !== "function")
    redis.defineCommand("shipbotEmit", { numberOfKeys: 3, lua: emitScript });

  return {
    async emit(jobId, patch, nulls = []) {
      const body: Record<string, unknown> = { ...patch, jobId, updatedAt: patch.updatedAt ?? Date.now() };
      for (const field of nulls) body[field] = null;
      const data = patch.data;
      const history: HistoryEntry | undefined =
        data && terminalPhases.has(patch.phase) && patch.phase !== "superseded" && patch.phase !== "cancelled"
          ? {
              jobId,
              kind: data.kind,
              phase: patch.phase,
              ...(patch.toImage ? { image: patch.toImage } : {}),
              by: data.requestedBy.name,
              at: Date.now(),
            }
          : undefined;
      const seq = await r.shipbotEmit(
        keys.job(jobId),
        keys.audit,
        data ? keys.history(data.service, data.env) : keys.history("-", "-"),
        JSON.stringify(body),
        stateTtlMs,
        auditMaxLength,
        history ? JSON.stringify(history) : "",
      );
      if (seq > 0) await signalCard(notifyQueue, jobId, terminalPhases.has(patch.phase));
      return seq;
    },
    async read(jobId) {
      const [raw, seq] = await redis.hmget(keys.job(jobId), "state", "seq");
      if (!raw) return undefined;
      const state = JSON.parse(raw) as JobState;
      state.seq = Number(seq);
      return state;
    },
    async history(service, env, count) {
      const rows = await redis.lrange(keys.history(service, env), 0, count - 1);
      return rows.map((row) => JSON.parse(row) as HistoryEntry);
    },
  };
}
