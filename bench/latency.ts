/**
 * Latency and soak scenarios: commands offered at a fixed rate (open loop) through the accept path to a
 * worker in the same process, timed from the command's receipt to the executor being called; and a soak
 * at a steady rate, watching the process's memory. Baseline: raw BullMQ add → processor start at the same
 * rate.
 */
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { createRuntime } from "../src/bin/create-runtime.ts";
import { benchConfig, noopExecutor } from "./bench-config.ts";

const log = pino({ level: "silent" });

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Offers `count` tasks at `rate` per second without waiting for earlier ones (open loop). */
async function offer(rate: number, count: number, task: (i: number) => Promise<unknown>): Promise<void> {
  const started = performance.now();
  const pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(task(i));
  }
  await Promise.all(pending);
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

export async function shipbotLatency(
  url: string,
  rate: number,
  count: number,
  tag: string,
): Promise<{ p50: number; p99: number }> {
  const received = new Map<string, number>();
  const latencies: number[] = [];
  const executor = noopExecutor((deployment) => {
    const at = received.get(deployment);
    if (at !== undefined) latencies.push(performance.now() - at);
  });
  const config = benchConfig(`bench-lat-${tag}`, count, 50);
  const runtime = await createRuntime({
    config,
    redisUrl: url,
    executor,
    chats: {},
    log,
    accept: true,
    work: true,
    notify: false,
    concurrency: 50,
  });
  const user = { id: "shell:bench", name: "bench", groups: [] };
  await offer(rate, count, async (i) => {
    received.set(`svc-${i}`, performance.now());
    await runtime.handle({
      id: `lat-${tag}-${i}`,
      user,
      conversation: { platform: "shell", channel: "bench" },
      text: `/deploy svc-${i} staging v1`,
      receivedAt: Date.now(),
    });
  });
  await waitFor(() => latencies.length >= count, 60_000);
  await runtime.ops.queue.obliterate({ force: true });
  await runtime.close();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

export async function rawLatency(
  url: string,
  rate: number,
  count: number,
  tag: string,
): Promise<{ p50: number; p99: number }> {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  const workerRedis = new Redis(url, { maxRetriesPerRequest: null });
  const name = `raw-lat-${tag}`;
  const queue = new Queue(name, { connection: redis });
  const added = new Map<string, number>();
  const latencies: number[] = [];
  const worker = new Worker(
    name,
    async (job) => {
      const at = added.get(job.id as string);
      if (at !== undefined) latencies.push(performance.now() - at);
    },
    { connection: workerRedis, concurrency: 50 },
  );
  await worker.waitUntilReady();
  await offer(rate, count, async (i) => {
    added.set(`r${i}`, performance.now());
    await queue.add("k8s.deploy", { i }, { jobId: `r${i}`, removeOnComplete: true });
  });
  await waitFor(() => latencies.length >= count, 60_000);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  await redis.quit();
  await workerRedis.quit();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/** Steady load for `seconds`; memory of this process (accept path + worker) after warm-up and at the end. */
export async function soak(
  url: string,
  rate: number,
  seconds: number,
): Promise<{ rssStartMb: number; rssEndMb: number; growth: number; errors: number; commands: number }> {
  const executor = noopExecutor();
  const config = benchConfig("bench-soak", 500, 50);
  const runtime = await createRuntime({
    config,
    redisUrl: url,
    executor,
    chats: { shell: { post: async () => "r", update: async () => undefined } },
    log,
    accept: true,
    work: true,
    notify: true,
    concurrency: 50,
  });
  const user = { id: "shell:bench", name: "bench", groups: [] };
  let errors = 0;
  const total = rate * seconds;
  let rssStart = 0;
  await offer(rate, total, async (i) => {
    if (i === Math.floor(total / 6)) {
      global.gc?.();
      rssStart = process.memoryUsage().rss;
    }
    const reply = await runtime.handle({
      id: `soak-${i}`,
      user,
      conversation: { platform: "shell", channel: "bench" },
      text: `/deploy svc-${i % 500} staging v${i}`,
      receivedAt: Date.now(),
    });
    if (!reply.ok) errors++;
  });
  global.gc?.();
  const rssEnd = process.memoryUsage().rss;
  await runtime.ops.queue.obliterate({ force: true });
  await runtime.close();
  return {
    rssStartMb: rssStart / 2 ** 20,
    rssEndMb: rssEnd / 2 ** 20,
    growth: rssEnd / rssStart - 1,
    errors,
    commands: total,
  };
}
