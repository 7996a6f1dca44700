/**
 * The enqueue scenario: shipbot's accept path (a normalised chat command: tokenize, registry, zod,
 * authorize, guard, one `Queue.add`) against raw `Queue.add` of the same payload, `inFlight` at a time.
 * Each side reports its rate, the Redis commands per operation (INFO commandstats) and the producer's
 * CPU per operation (`process.cpuUsage()`), which on a shared machine is steadier than the rate.
 */
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import type { ChatCommand } from "../src/core/model.ts";
import { benchConfig, startProducer } from "./bench-config.ts";
import { commandCalls, redisCpuUs } from "./redis-server.ts";

export interface EnqueueFigures {
  /** Operations per second. */
  rate: number;
  /** Redis commands per operation. */
  commands: number;
  /** This process's CPU (user + system) per operation, µs. */
  cpuUs: number;
  /** Redis's CPU per operation, µs. */
  redisUs: number;
}

/** The raw side's job payload: what shipbot stores for a deploy. */
export const enqueuePayload = (i: number) => ({
  kind: "deploy",
  service: `svc-${i % 1000}`,
  env: "staging",
  version: `v${i}`,
  requestedBy: { id: "shell:bench", name: "bench" },
  conversation: { platform: "shell", channel: "bench" },
  commandId: `cmd-${i}`,
  requestedAt: Date.now(),
  traceId: "0123456789abcdef01",
});

/**
 * Operations each side runs before its clock starts, so both are measured warm (a server runs for days;
 * its first few thousand commands, while V8 still compiles the path, say little about its rate).
 */
export const warmUpCount = 3_000;

/** Runs `count` tasks with `limit` in flight; rate and CPU per task. */
async function run(
  count: number,
  limit: number,
  task: (i: number) => Promise<unknown>,
): Promise<{ rate: number; cpuUs: number }> {
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < count) await task(next++);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { rate: count / seconds, cpuUs: (used.user + used.system) / count };
}

export async function rawEnqueue(
  url: string,
  rep: number,
  count: number,
  inFlight: number,
): Promise<EnqueueFigures> {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(`raw-enqueue-${rep}`, { connection: redis });
  await queue.waitUntilReady();
  await run(warmUpCount, inFlight, (i) =>
    queue.add("k8s.deploy", enqueuePayload(i), { jobId: `w${rep}x${i}`, removeOnComplete: true }),
  );
  await redis.config("RESETSTAT");
  const redis0 = await redisCpuUs(redis);
  const figures = await run(count, inFlight, (i) =>
    queue.add("k8s.deploy", enqueuePayload(i), { jobId: `j${rep}x${i}`, removeOnComplete: true }),
  );
  const redisUs = ((await redisCpuUs(redis)) - redis0) / count;
  const commands = (await commandCalls(redis)) / count;
  await queue.obliterate({ force: true });
  await queue.close();
  await redis.quit();
  return { ...figures, commands, redisUs };
}

export async function shipbotEnqueue(
  url: string,
  rep: number,
  count: number,
  inFlight: number,
): Promise<EnqueueFigures> {
  const runtime = await startProducer(benchConfig(`bench-e${rep}`, 1000, 10), url);
  const user = { id: "shell:bench", name: "bench", groups: [] };
  const command = (i: number): ChatCommand => ({
    id: `bench-${rep}-${i}`,
    user,
    conversation: { platform: "shell", channel: "bench" },
    text: `/deploy svc-${i % 1000} staging v${i}`,
    receivedAt: Date.now(),
  });
  await run(warmUpCount, inFlight, (i) => runtime.handle({ ...command(i), id: `bench-${rep}-warm-${i}` }));
  await runtime.redis.config("RESETSTAT");
  const redis0 = await redisCpuUs(runtime.redis);
  const figures = await run(count, inFlight, async (i) => {
    const reply = await runtime.handle(command(i));
    if (!reply.ok) throw new Error(reply.error?.message);
  });
  const redisUs = ((await redisCpuUs(runtime.redis)) - redis0) / count;
  const commands = (await commandCalls(runtime.redis)) / count;
  await runtime.ops.queue.obliterate({ force: true });
  await runtime.close();
  return { ...figures, commands, redisUs };
}
