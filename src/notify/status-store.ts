import type { Redis } from "ioredis";
import { auditMaxLength } from "../audit/audit-log.ts";
import type { JobData, JobPhase, JobState } from "../core/model.ts";
import type { Keys } from "../queue/keys.ts";
import { progressCardDelayMs, transitionLua } from "./transition-lua.ts";

/** A finished operation, as `status` lists it. */
export interface HistoryEntry {
  jobId: string;
  kind: string;
  phase: JobPhase;
  image?: string;
  /** A deploy that failed before reporting its image: the version that was asked for. */
  version?: string;
  by: string;
  at: number;
}

/** Succeeded operations, newest first: what the target went through. */
export function succeededNewestFirst(history: readonly HistoryEntry[]): HistoryEntry[] {
  return history.filter((h) => h.phase === "succeeded").sort((a, b) => b.at - a.at);
}

/**
 * The target's newest change to what it runs, from `succeededNewestFirst`'s list: what a rollback
 * (`rollout undo`) would undo. Scaling keeps the image, so it is no such change.
 */
export function newestChange(done: readonly HistoryEntry[]): HistoryEntry | undefined {
  return done.find((h) => h.kind !== "scale");
}

export type StatePatch = {
  phase: JobPhase;
  text: string;
  position?: number;
  progress?: { updated: number; available: number; desired: number };
  fromImage?: string;
  toImage?: string;
  startedAt?: number;
  finishedAt?: number;
};

export interface StatusStore {
  /** Applies a change and marks the card for rendering. Returns the new sequence number, or 0 if nothing changed. */
  emit(jobId: string, patch: StatePatch, clear?: Array<"position" | "progress">): Promise<number>;
  read(jobId: string): Promise<JobState | undefined>;
  history(service: string, env: string, count: number): Promise<HistoryEntry[]>;
}

/** Kept for a week: long enough for any card edit or a late `status`. */
export const stateTtlMs = 7 * 24 * 3600 * 1000;

const emitScript = `${transitionLua}
local now = nowMs()
local sets = {}
for i = 9, #ARGV do sets[#sets + 1] = ARGV[i] end
local dels = {}
if ARGV[5] ~= '' then for f in string.gmatch(ARGV[5], '[^,]+') do dels[#dels + 1] = f end end
local seq, meta = transition(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], now, tonumber(ARGV[4]), ARGV[6], ARGV[7], sets, dels)
if seq > 0 and terminal[ARGV[2]] and (ARGV[2] == 'succeeded' or ARGV[2] == 'failed') then
  recordHistory(ARGV[8], KEYS[1], meta, ARGV[1], ARGV[2], redis.call('HGET', KEYS[1], 'toImage'), now)
end
return seq
`;

type ScriptRedis = Redis & { shipbotEmit(...args: Array<string | number>): Promise<number> };

/** Flattens a patch into hash fields (everything but phase and text). */
export function toStateFields(patch: StatePatch): string[] {
  const sets: string[] = [];
  if (patch.position !== undefined) sets.push("position", String(patch.position));
  if (patch.progress) {
    sets.push(
      "updated",
      String(patch.progress.updated),
      "available",
      String(patch.progress.available),
      "desired",
      String(patch.progress.desired),
    );
  }
  if (patch.fromImage !== undefined) sets.push("fromImage", patch.fromImage);
  if (patch.toImage !== undefined) sets.push("toImage", patch.toImage);
  if (patch.startedAt !== undefined) sets.push("startedAt", String(patch.startedAt));
  if (patch.finishedAt !== undefined) sets.push("finishedAt", String(patch.finishedAt));
  return sets;
}

export function cardDelayFor(phase: JobPhase): number {
  return phase === "progress" ? progressCardDelayMs : 0;
}

const num = (value: string | undefined): number | undefined =>
  value === undefined || value === "" ? undefined : Number(value);

/** Builds a JobState from the state hash; undefined while the job has no state or no payload yet. */
export function fromStateHash(jobId: string, hash: Record<string, string>): JobState | undefined {
  if (!hash.phase || !hash.data) return undefined;
  const state: JobState = {
    jobId,
    seq: Number(hash.seq ?? 0),
    phase: hash.phase as JobPhase,
    text: hash.text ?? "",
    data: JSON.parse(hash.data) as JobData,
    updatedAt: Number(hash.updatedAt ?? 0),
  };
  const position = num(hash.position);
  if (position !== undefined) state.position = position;
  const desired = num(hash.desired);
  if (desired !== undefined)
    state.progress = { updated: num(hash.updated) ?? 0, available: num(hash.available) ?? 0, desired };
  if (hash.fromImage) state.fromImage = hash.fromImage;
  if (hash.toImage) state.toImage = hash.toImage;
  const startedAt = num(hash.startedAt);
  if (startedAt !== undefined) state.startedAt = startedAt;
  const finishedAt = num(hash.finishedAt);
  if (finishedAt !== undefined) state.finishedAt = finishedAt;
  if (hash.approvedBy) state.approvedBy = hash.approvedBy;
  return state;
}

/**
 * The latest state of every job, in Redis so any process can render its card. Transitions go through
 * one script each (see transition-lua.ts); this store is used off the hot path (progress, cancel) and
 * for reads.
 */
export function createStatusStore(redis: Redis, keys: Keys): StatusStore {
  const r = redis as ScriptRedis;
  if (typeof r.shipbotEmit !== "function")
    redis.defineCommand("shipbotEmit", { numberOfKeys: 4, lua: emitScript });

  return {
    async emit(jobId, patch, clear = []) {
      const dels = clear.flatMap((f) => (f === "progress" ? ["updated", "available", "desired"] : [f]));
      return r.shipbotEmit(
        keys.job(jobId),
        keys.bullJob(jobId),
        keys.audit,
        keys.cards,
        jobId,
        patch.phase,
        patch.text,
        cardDelayFor(patch.phase),
        dels.join(","),
        auditMaxLength,
        stateTtlMs,
        keys.historyPrefix,
        ...toStateFields(patch),
      );
    },
    async read(jobId) {
      const hash = await redis.hgetall(keys.job(jobId));
      if (!hash.data && hash.phase) {
        // The payload is copied on the first transition; before that it is only in the job itself.
        const data = await redis.hget(keys.bullJob(jobId), "data");
        if (data) hash.data = data;
      }
      return fromStateHash(jobId, hash);
    },
    async history(service, env, count) {
      const rows = await redis.lrange(keys.history(service, env), 0, count - 1);
      return rows.map((row) => {
        const entry = JSON.parse(row) as HistoryEntry | (Omit<HistoryEntry, "image"> & { image: false });
        // Entries written before missing images were left out say `image: false`.
        if (entry.image === false) {
          const { image: _none, ...rest } = entry;
          return rest;
        }
        return entry;
      });
    },
  };
}
