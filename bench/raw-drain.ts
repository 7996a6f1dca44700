import { type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { opJobOptions } from "../src/queue/ops-queue.ts";
import { wrapFetchWithEmptyAcquire } from "./bench-config.ts";
import { enqueuePayload } from "./enqueue.ts";

/**
 * plain: BullMQ's defaults, finished jobs removed; options: shipbot's job options; wrapped: those options
 * and the worker's fetch wrapped as shipbot's, around an acquire that does nothing.
 */
export type RawMode = "plain" | "options" | "wrapped";

export interface RawDrain {
  /** The queue's connection, for the caller's clocks and counters. */
  redis: Redis;
  /** Starts a no-op worker and resolves once every job completed. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** `count` deploy jobs on a raw BullMQ queue of their own, and the worker that drains them when asked. */
export async function prepareRawDrain(
  url: string,
  name: string,
  count: number,
  concurrency: number,
  mode: RawMode,
): Promise<RawDrain> {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(name, { connection: redis });
  for (let i = 0; i < count; i += 500)
    await queue.addBulk(
      Array.from({ length: Math.min(500, count - i) }, (_, k) => ({
        name: "k8s.deploy",
        data: enqueuePayload(i + k),
        opts: mode === "plain" ? { removeOnComplete: true } : opJobOptions(`${name}-${i + k}`, "deploy"),
      })),
    );
  const workerRedis = new Redis(url, { maxRetriesPerRequest: null });
  const fetched = mode === "wrapped" ? wrapFetchWithEmptyAcquire(workerRedis, concurrency) : undefined;
  let missed = 0;
  const processor = fetched
    ? async (job: Job) => {
        if (fetched.take(job.id ?? "", job.attemptsStarted) === undefined) missed++;
      }
    : async () => undefined;
  let worker: Worker | undefined;
  return {
    redis,
    async drain() {
      let done = 0;
      worker = new Worker(name, processor, { connection: workerRedis, concurrency });
      worker.on("completed", () => done++);
      while (done < count) await new Promise((r) => setTimeout(r, 20));
    },
    async close() {
      await worker?.close();
      if (missed > 0) console.warn(`${name}: ${missed} of ${count} jobs were not acquired in the fetch`);
      await workerRedis.quit();
      await queue.obliterate({ force: true });
      await queue.close();
      await redis.quit();
    },
  };
}
