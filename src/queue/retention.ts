import type { Queue } from "bullmq";
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

/**
 * Removes the finished operations jobs past their retention: older than `age`, then the oldest beyond
 * `count`. BullMQ's `clean` removes the job hashes with their logs, oldest first, at most `perCall` a
 * script call. Idempotent: two processes trimming at once remove each job once.
 */
export async function trimFinished(
  queue: Queue,
  keep: { completed: Keep; failed: Keep } = { completed: keepCompleted, failed: keepFailed },
): Promise<{ completed: number; failed: number }> {
  const removed = { completed: 0, failed: 0 };
  for (const type of ["completed", "failed"] as const) {
    const { age, count } = keep[type];
    for (;;) {
      const ids = await queue.clean(age * 1000, perCall, type);
      removed[type] += ids.length;
      if (ids.length < perCall) break;
    }
    let excess = (await queue.getJobCountByTypes(type)) - count;
    while (excess > 0) {
      const ids = await queue.clean(0, Math.min(excess, perCall), type);
      removed[type] += ids.length;
      if (ids.length === 0) break;
      excess -= ids.length;
    }
  }
  return removed;
}

/**
 * Trims finished jobs every `everyMs` (a minute) instead of on every job: BullMQ's own retention, given
 * to the worker, reads and trims the finished set in the script that finishes each job (three Redis
 * commands per job, even when nothing is due). Jobs are kept at least as long as before; past their
 * count they may linger until the next trim. Runs in every worker process; the first trim is at start.
 */
export function startRetention(deps: { queue: Queue; log: Logger; everyMs?: number }): {
  close(): Promise<void>;
} {
  return startLoop(
    async () => {
      const removed = await trimFinished(deps.queue);
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
