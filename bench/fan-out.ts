/**
 * Fan-out: one command targeting 1,000 services. How long until all 1,000 jobs are queued (against a raw
 * `Queue.addBulk` of 1,000 jobs in the same run), and how many chat messages the batch makes.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { createRuntime } from "../src/bin/create-runtime.ts";
import type { Card } from "../src/core/card.ts";
import type { ChatCommand } from "../src/core/model.ts";
import type { ChatPort } from "../src/notify/chat-port.ts";
import { benchConfig, noopExecutor, startProducer } from "./bench-config.ts";

export const fanOutTargets = 1000;
const log = pino({ level: "silent" });
const user = { id: "shell:bench", name: "bench", groups: [] };

const command = (id: string, text: string): ChatCommand => ({
  id,
  user,
  conversation: { platform: "shell", channel: "bench" },
  text,
  receivedAt: Date.now(),
});

/** Milliseconds from a `deploy * staging v2` command received to its 1,000 jobs queued. */
export async function shipbotFanOut(url: string, rep: number): Promise<number> {
  const config = benchConfig(`bench-f${rep}`, fanOutTargets, 10);
  const runtime = await startProducer(config, url);
  // Warm-up with the same shape, so both sides are measured with compiled code and open connections.
  await runtime.handle(command(`fan-warm-${rep}`, "/deploy * staging v1"));
  const started = performance.now();
  const reply = await runtime.handle(command(`fan-${rep}`, "/deploy * staging v2"));
  const ms = performance.now() - started;
  if (!reply.ok || reply.jobIds.length !== fanOutTargets)
    throw new Error(`fan-out queued ${reply.jobIds.length} jobs: ${reply.error?.message ?? ""}`);
  await runtime.ops.queue.obliterate({ force: true });
  await runtime.close();
  return ms;
}

/** Milliseconds for one raw `Queue.addBulk` of 1,000 jobs with the same options. */
export async function rawAddBulk(url: string, rep: number): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(`raw-fan-${rep}`, { connection: redis });
  await queue.waitUntilReady();
  const jobs = (round: string) =>
    Array.from({ length: fanOutTargets }, (_, i) => ({
      name: "k8s.deploy",
      data: {
        kind: "deploy",
        service: `svc-${i}`,
        env: "staging",
        version: `v${round}`,
        requestedBy: { id: "shell:bench", name: "bench" },
        conversation: { platform: "shell", channel: "bench" },
        commandId: `raw-${round}`,
        requestedAt: Date.now(),
        traceId: "0123456789abcdef01",
      },
      opts: {
        jobId: `r${round}x${i}`,
        priority: 2,
        attempts: 3,
        backoff: { type: "exponential", delay: 2_000 },
        removeOnComplete: { age: 86_400, count: 10_000 },
      },
    }));
  await queue.addBulk(jobs("warm"));
  const batch = jobs("m");
  const started = performance.now();
  await queue.addBulk(batch);
  const ms = performance.now() - started;
  await queue.obliterate({ force: true });
  await queue.close();
  await redis.quit();
  return ms;
}

export interface FanOutMessages {
  posts: number;
  edits: number;
  last: string;
}

/**
 * Runs a 1,000-service fan-out to the end through the worker, the deriver and the notifier, to a chat
 * paced like Slack's chat.update (1,250 ms), and counts the messages the batch made.
 */
export async function fanOutMessages(url: string): Promise<FanOutMessages> {
  const config = benchConfig("bench-fan-cards", fanOutTargets, 50);
  let posts = 0;
  let edits = 0;
  let last: Card | undefined;
  const chat: ChatPort = {
    async post(_conversation, card) {
      posts++;
      last = card;
      return `m${posts}`;
    },
    async update(_conversation, _ref, card) {
      edits++;
      last = card;
    },
    pace: (operation, conversation) =>
      operation === "post"
        ? { key: `post:${conversation.channel}`, intervalMs: 1_100 }
        : { key: "update", intervalMs: 1_250 },
  };
  const runtime = await createRuntime({
    config,
    redisUrl: url,
    executor: noopExecutor(),
    chats: { shell: chat },
    log,
    accept: true,
    work: true,
    notify: true,
    concurrency: 50,
  });
  const reply = await runtime.handle(command("fan-cards", "/deploy * staging v2"));
  if (!reply.ok) throw new Error(reply.error?.message);
  const done = `${fanOutTargets.toLocaleString("en-US")}/${fanOutTargets.toLocaleString("en-US")} done`;
  const deadline = Date.now() + 120_000;
  while (!last?.lines[0]?.includes(done)) {
    if (Date.now() > deadline) throw new Error(`the batch card never said "${done}": ${last?.lines[0]}`);
    await sleep(50);
  }
  // Anything still due would be one more edit: let it land before counting.
  await sleep(1_500);
  await runtime.ops.queue.obliterate({ force: true });
  await runtime.close();
  return { posts, edits, last: last?.lines[0] ?? "" };
}
