import { DelayedError, Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { renderJobCard } from "../core/render-job-card.ts";
import type { Keys } from "../queue/keys.ts";
import { type ChatPorts, isChatRateLimitedError } from "./chat-port.ts";
import { createPaceClock } from "./pace-script.ts";
import type { StatusStore } from "./status-store.ts";

interface CardRef {
  ref: string;
  seq: number;
}

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
 * Keeps one card per job in its conversation. It always renders the newest state from the status
 * store, so coalescing is free: a signal that arrives while a render is pending is folded into it.
 * The card reference lives in Redis, so whichever process runs the next render edits the same message.
 */
export function createNotifier(options: NotifierOptions): Worker<{ jobId: string }> {
  const { redis, keys, status, chats, log } = options;
  const clock = createPaceClock(redis, keys.pace);
  const worker = new Worker<{ jobId: string }>(
    keys.notifyQueue,
    async (job, token) => {
      const { jobId } = job.data;
      const state = await status.read(jobId);
      if (!state) return;
      const chat = chats[state.data.conversation.platform];
      if (!chat) {
        log.error(
          { jobId, platform: state.data.conversation.platform },
          "no chat adapter for this platform; card not sent",
        );
        return;
      }
      const stored = await redis.get(keys.cardRef(jobId));
      const previous = stored ? (JSON.parse(stored) as CardRef) : undefined;
      if (previous && previous.seq >= state.seq) return;
      const card = renderJobCard(state);
      const conversation = state.data.conversation;
      // Platform limits are shared by every notifier process: wait for this key's slot without
      // holding a worker, and leave other conversations untouched.
      const pace = chat.pace?.(previous ? "update" : "post", conversation);
      const later = async (ms: number): Promise<never> => {
        await job.moveToDelayed(Date.now() + ms, token);
        throw new DelayedError();
      };
      if (pace) {
        const wait = await clock.reserve(pace.key, pace.intervalMs);
        if (wait > 0) return later(wait);
      }
      let ref: string;
      try {
        if (previous) {
          await chat.update(conversation, previous.ref, card);
          ref = previous.ref;
        } else {
          ref = await chat.post(conversation, card);
        }
      } catch (error) {
        if (!isChatRateLimitedError(error)) throw error;
        log.info(
          { jobId, retryAfterMs: error.retryAfterMs, pace: pace?.key },
          "chat platform rate limited; waiting",
        );
        if (pace) await clock.hold(pace.key, error.retryAfterMs);
        return later(error.retryAfterMs);
      }
      await redis.set(
        keys.cardRef(jobId),
        JSON.stringify({ ref, seq: state.seq } satisfies CardRef),
        "EX",
        7 * 24 * 3600,
      );
    },
    { connection: options.connection, prefix: keys.prefix, concurrency: options.concurrency ?? 50 },
  );
  worker.on("error", (error) => log.error({ err: error }, "notifier error"));
  worker.on("failed", (job, error) =>
    log.warn({ jobId: job?.data.jobId, err: error }, "card update failed; will retry"),
  );
  return worker;
}
