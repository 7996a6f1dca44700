/**
 * CPU per drained job, which stays put on a shared machine where jobs/s does not: the worker process's
 * `process.cpuUsage()` and Redis's `INFO cpu` (user + sys) over the drain, divided by the job count,
 * for a raw BullMQ worker with a no-op processor and for shipbot's worker (and, with `--records`, its
 * deriver and notifier too) in the same run, on a Redis of its own.
 *
 *   node bench/drain-cpu.ts [jobs=4000] [--records] [--reps 3] [--job-opts | --stages] [raw | shipbot]
 *
 * `--job-opts` gives the raw jobs shipbot's own job options (priority, attempts with backoff, finished
 * jobs kept: shipbot trims them once a minute, outside the drain), which tells BullMQ's share of the
 * difference from shipbot's. `--stages` runs, in turn, raw BullMQ, raw with shipbot's job options, the
 * same with the worker's fetch wrapped as shipbot wraps it but with an acquire that does nothing (the
 * job's payload decoded and the acquire's arguments made, no Redis command), and shipbot's worker: where
 * the difference between the first and the last comes from. `raw` or `shipbot` runs that side alone
 * (for `node --cpu-prof`).
 */
import type { Redis } from "ioredis";
import { pino } from "pino";
import { createRuntime } from "../src/bin/create-runtime.ts";
import { benchConfig, noopExecutor, silentChat, startProducer } from "./bench-config.ts";
import { rotate, startCpuClock } from "./measure.ts";
import { prepareRawDrain, type RawMode } from "./raw-drain.ts";
import { commandCalls, startBenchRedis } from "./redis-server.ts";

const count = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 4000);
const records = process.argv.includes("--records");
const repsAt = process.argv.indexOf("--reps");
const reps = repsAt === -1 ? 3 : Number(process.argv[repsAt + 1]);
const stages = process.argv.includes("--stages");
const jobOpts = process.argv.includes("--job-opts");
const side = process.argv.find((a) => a === "raw" || a === "shipbot");
const concurrency = 10;
const log = pino({ level: "silent" });

export interface CpuPerJob {
  nodeUs: number;
  redisUs: number;
  scriptUs: number;
  commands: number;
  rate: number;
}

async function scriptUsec(redis: Redis): Promise<number> {
  const info = await redis.info("commandstats");
  let us = 0;
  for (const m of info.matchAll(/cmdstat_(evalsha|eval|fcall):calls=\d+,usec=(\d+)/g)) us += Number(m[2]);
  return us;
}

/** Starts the clocks, runs `drain` until it resolves, and divides every delta by `count`. */
export async function measureCpu(redis: Redis, n: number, drain: () => Promise<void>): Promise<CpuPerJob> {
  await redis.config("RESETSTAT");
  const cpu = await startCpuClock(redis);
  const t0 = performance.now();
  await drain();
  const secs = (performance.now() - t0) / 1000;
  const { nodeUs, redisUs } = await cpu();
  return {
    nodeUs: nodeUs / n,
    redisUs: redisUs / n,
    scriptUs: (await scriptUsec(redis)) / n,
    commands: (await commandCalls(redis)) / n,
    rate: n / secs,
  };
}

const until = async (done: () => boolean | Promise<boolean>): Promise<void> => {
  while (!(await done())) await new Promise((r) => setTimeout(r, 20));
};

async function raw(url: string, rep: number, mode: RawMode): Promise<CpuPerJob> {
  const raw = await prepareRawDrain(url, `raw-cpu-${mode}-${rep}`, count, concurrency, mode);
  const result = await measureCpu(raw.redis, count, raw.drain);
  await raw.close();
  return result;
}

async function shipbot(url: string, rep: number): Promise<CpuPerJob> {
  const config = benchConfig(`cpu-${rep}${records ? "r" : ""}`, count, concurrency);
  const producer = await startProducer(config, url);
  const user = { id: "shell:bench", name: "bench", groups: [] };
  for (let i = 0; i < count; i += 32)
    await Promise.all(
      Array.from({ length: Math.min(32, count - i) }, (_, k) =>
        producer.handle({
          id: `c${rep}-${i + k}`,
          user,
          conversation: { platform: "shell", channel: "bench" },
          text: `/deploy svc-${i + k} staging v1`,
          receivedAt: Date.now(),
        }),
      ),
    );
  let done = 0;
  let runtime: Awaited<ReturnType<typeof createRuntime>> | undefined;
  const result = await measureCpu(producer.redis, count, async () => {
    runtime = await createRuntime({
      config,
      redisUrl: url,
      executor: noopExecutor(),
      chats: { shell: silentChat },
      log,
      accept: false,
      work: true,
      notify: records,
      concurrency,
    });
    for (const worker of runtime.workers) worker.on("completed", () => done++);
    await until(async () => {
      if (done < count) return false;
      if (!records) return true;
      const [pending, inflight] = await Promise.all([
        producer.redis.zcard(producer.keys.cards),
        producer.redis.zcard(producer.keys.cardsInflight),
      ]);
      return pending === 0 && inflight === 0;
    });
  });
  await runtime?.close();
  await producer.ops.queue.obliterate({ force: true });
  await producer.close();
  return result;
}

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

function summary(runs: CpuPerJob[]): CpuPerJob {
  return {
    nodeUs: median(runs.map((r) => r.nodeUs)),
    redisUs: median(runs.map((r) => r.redisUs)),
    scriptUs: median(runs.map((r) => r.scriptUs)),
    commands: median(runs.map((r) => r.commands)),
    rate: median(runs.map((r) => r.rate)),
  };
}

const server = await startBenchRedis();
try {
  const runs: Array<[string, (rep: number) => Promise<CpuPerJob>]> = stages
    ? [
        ["raw BullMQ", (rep) => raw(server.url, rep, "plain")],
        ["raw, shipbot's job options", (rep) => raw(server.url, rep, "options")],
        ["the same, fetch wrapped", (rep) => raw(server.url, rep, "wrapped")],
      ]
    : [
        [
          jobOpts ? "raw, shipbot's job options" : "raw BullMQ",
          (rep) => raw(server.url, rep, jobOpts ? "options" : "plain"),
        ],
      ];
  runs.push([records ? "shipbot + records, cards" : "shipbot worker", (rep) => shipbot(server.url, rep)]);
  // One side alone, for `node --cpu-prof`.
  if (side === "raw") runs.pop();
  if (side === "shipbot") runs.splice(0, runs.length - 1);
  const results = (
    await rotate(
      reps,
      runs.map(([, run]) => run),
    )
  ).map(summary);
  const total = (x: CpuPerJob) => x.nodeUs + x.redisUs;
  const base = results[0] ?? summary([]);
  console.log(`${count} jobs, concurrency ${concurrency}, medians of ${reps}`);
  for (const [i, [name]] of runs.entries()) {
    const x = results[i] ?? base;
    console.log(
      `${name.padEnd(26)} node ${x.nodeUs.toFixed(0).padStart(5)} µs  redis ${x.redisUs.toFixed(0).padStart(5)} µs  total ${total(x).toFixed(0).padStart(5)} µs  scripts ${x.scriptUs.toFixed(0).padStart(4)} µs  cmds ${x.commands.toFixed(1).padStart(5)}  ${Math.round(x.rate)}/s` +
        (i === 0 ? "" : `  CPU ratio ${(total(base) / total(x)).toFixed(2)}`),
    );
  }
} finally {
  await server.stop();
}
