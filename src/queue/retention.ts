import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { startLoop } from "../core/start-loop.ts";

export interface Keep {
  /** Seconds a finished job is kept. */
  age: number;
  /** At most this many finished jobs of the kind are kept (the oldest go first). */
  count: number;
}

/**
 * How long finished jobs are kept: completed ones a day, so that a redelivered chat event still finds its
 * job and creates nothing twice; failed ones a week; at most 10,000 of each.
 */
export const keepCompleted: Keep = { age: 24 * 3600, count: 10_000 };
export const keepFailed: Keep = { age: 7 * 24 * 3600, count: 10_000 };

/** Jobs removed per script call, so one trim never holds Redis for long (a call removes ~1,000 in ms). */
const perCall = 1_000;

/** Removes the jobs of a finished set whose score (finish time) is at or before `cutoff`, oldest first. */
async function cleanUpTo(queue: Queue, type: "completed" | "failed", cutoff: number): Promise<number> {
  let removed = 0;
  for (;;) {
    const ids = await queue.clean(Math.max(0, Date.now() - cutoff), perCall, type);
    removed += ids.length;
    if (ids.length < perCall) return removed;
  }
}

/**
 * Removes the finished operations jobs past their retention: older than `age`, then the oldest beyond
 * `count`. BullMQ's `clean` removes the job hashes with their logs, oldest first, at most `perCall` a
 * script call. Both limits become a finish time to clean up to (the count's: the finish time of the
 * newest job beyond it), so processes trimming at once remove the same jobs, never twice as many.
 */
export async function trimFinished(
  queue: Queue,
  redis: Redis,
  keep: { completed: Keep; failed: Keep } = { completed: keepCompleted, failed: keepFailed },
): Promise<{ completed: number; failed: number }> {
  const removed = { completed: 0, failed: 0 };
  for (const type of ["completed", "failed"] as const) {
    const { age, count } = keep[type];
    removed[type] += await cleanUpTo(queue, type, Date.now() - age * 1000);
    const beyond = await redis.zrevrange(queue.toKey(type), count, count, "WITHSCORES");
    if (beyond.length === 2) removed[type] += await cleanUpTo(queue, type, Number(beyond[1]));
  }
  return removed;
}

/**
 * Trims finished jobs every `everyMs` (a minute) instead of on every job: BullMQ's own retention, given
 * to the worker, reads and trims the finished set in the script that finishes each job (three Redis
 * commands per job, even when nothing is due). Jobs are kept at least as long as before; past their
 * count they may linger until the next trim. Runs in every worker process; the first trim is at start.
 */
export function startRetention(deps: { queue: Queue; redis: Redis; log: Logger; everyMs?: number }): {
  close(): Promise<void>;
} {
  return startLoop(
    async () => {
      const removed = await trimFinished(deps.queue, deps.redis);
      if (removed.completed + removed.failed > 0)
        deps.log.debug(removed, "removed finished jobs past retention");
    },
    {
      everyMs: deps.everyMs ?? 60_000,
      onError: (error) => deps.log.warn({ err: error }, "could not trim finished jobs; will retry"),
      unref: true,
    },
  );
}
