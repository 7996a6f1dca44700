import { DelayedError, type Job, Queue, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { isShipbotError } from "../core/errors.ts";
import { renderJobCard } from "../core/render-job-card.ts";
import type { Keys } from "../queue/keys.ts";
import { type ChatPorts, isChatRateLimitedError } from "./chat-port.ts";
import { createPaceClock } from "./pace-script.ts";
import type { StatusStore } from "./status-store.ts";

interface CardRef {
  ref: string;
  seq: number;
}

/** Priority lanes of the notification queue (lower first). */
export const notifyPriority = { final: 1, progress: 2 } as const;

export function createNotifyQueue(redis: Redis, keys: Keys): Queue {
  const queue = new Queue(keys.notifyQueue, {
    connection: redis,
    prefix: keys.prefix,
    defaultJobOptions: {
      attempts: 20,
      backoff: { type: "exponential", delay: 500 },
      removeOnComplete: true,
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  });
  queue.on("error", () => undefined);
  return queue;
}

/**
 * Wakes the notifier for a job's card. At most one pending render per card and lane: the render reads
 * the newest state, so a signal that arrives while one is pending carries nothing new, and one that
 * arrives during a render is kept for after it. Final states have their own lane so they never wait
 * behind a pending progress render.
 */
export async function signalCard(queue: Queue, jobId: string, final: boolean): Promise<void> {
  await queue.add(
    "card",
    { jobId },
    {
      deduplication: { id: final ? `${jobId}-final` : jobId, keepLastIfActive: true },
      priority: final ? notifyPriority.final : notifyPriority.progress,
    },
  );
}

export interface NotifierOptions {
  connection: Redis;
  /** A non-blocking connection for card references. */
  redis: Redis;
  keys: Keys;
  status: StatusStore;
  chats: ChatPorts;
  log: Logger;
  concurrency?: number;
}

/**
 * Keeps one card per job in its conversation: posted once, then edited in place, always with the newest
 * state. The card reference lives in Redis, so whichever process runs the next render edits the same
 * message; a short lock per card keeps two renders of one card (the two lanes, two processes) from
 * racing into two posts.
 */
export function createNotifier(options: NotifierOptions): Worker<{ jobId: string }> {
  const { redis, keys, status, chats, log } = options;
  const clock = createPaceClock(redis, keys.pace);

  async function later(job: Job, token: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + Math.max(1, Math.ceil(ms)), token);
    throw new DelayedError();
  }

  async function render(job: Job<{ jobId: string }>, token: string | undefined): Promise<void> {
    const { jobId } = job.data;
    const state = await status.read(jobId);
    if (!state) return;
    const conversation = state.data.conversation;
    const chat = chats[conversation.platform];
    if (!chat) {
      log.error(
        { jobId, platform: conversation.platform },
        "no chat adapter for this platform; card not sent",
      );
      return;
    }
    const lock = `${keys.cardRef(jobId)}:lock`;
    if ((await redis.set(lock, token ?? "1", "PX", 30_000, "NX")) !== "OK") return later(job, token, 100);
    try {
      const stored = await redis.get(keys.cardRef(jobId));
      const previous = stored ? (JSON.parse(stored) as CardRef) : undefined;
      if (previous && previous.seq >= state.seq) return;
      const card = renderJobCard(state);
      // Platform limits are shared by every notifier process: wait for this key's slot without
      // holding a worker, and leave other conversations untouched.
      const pace = chat.pace?.(previous ? "update" : "post", conversation);
      if (pace) {
        const wait = await clock.reserve(pace.key, pace.intervalMs);
        if (wait > 0) return later(job, token, wait);
      }
      let ref: string;
      try {
        if (previous) {
          try {
            await chat.update(conversation, previous.ref, card);
            ref = previous.ref;
          } catch (error) {
            // The message was deleted: a person still needs to see the state, so post it again.
            if (!isShipbotError(error) || error.code !== "not_found") throw error;
            log.warn({ jobId }, "card message is gone; posting a new one");
            ref = await chat.post(conversation, card);
          }
        } else {
          ref = await chat.post(conversation, card);
        }
      } catch (error) {
        if (isChatRateLimitedError(error)) {
          log.info(
            { jobId, retryAfterMs: error.retryAfterMs, pace: pace?.key },
            "chat platform rate limited; waiting",
          );
          if (pace) await clock.hold(pace.key, error.retryAfterMs);
          return later(job, token, error.retryAfterMs);
        }
        if (isShipbotError(error) && !error.retryable) {
          log.error({ jobId, err: error }, "card cannot be delivered");
          throw new UnrecoverableError(error.message);
        }
        throw error;
      }
      await redis.set(
        keys.cardRef(jobId),
        JSON.stringify({ ref, seq: state.seq } satisfies CardRef),
        "EX",
        7 * 24 * 3600,
      );
    } finally {
      await redis.del(lock);
    }
  }

  const worker = new Worker<{ jobId: string }>(keys.notifyQueue, render, {
    connection: options.connection,
    prefix: keys.prefix,
    concurrency: options.concurrency ?? 50,
  });
  worker.on("error", (error) => log.error({ err: error }, "notifier error"));
  worker.on("failed", (job, error) => log.warn({ jobId: job?.data.jobId, err: error }, "card update failed"));
  return worker;
}
