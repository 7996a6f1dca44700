/**
 * `npm run bench`: shipbot's hot paths against raw BullMQ and Redis, measured in the same run on a Redis
 * of its own. Prints a table and writes bench/results/latest.json. `--quick` runs smaller sizes;
 * `--only fanout` runs that scenario alone and updates its rows in latest.json. A full run ends with
 * bench/http-load.ts (`--no-load` skips it).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { pino } from "pino";
import { createRuntime } from "../src/bin/create-runtime.ts";
import { benchConfig, noopExecutor, silentChat, startProducer } from "./bench-config.ts";
import { rawEnqueue, shipbotEnqueue, warmUpCount } from "./enqueue.ts";
import { fanOutMessages, fanOutTargets, rawAddBulk, shipbotFanOut } from "./fan-out.ts";
import { rawLatency, shipbotLatency, soak } from "./latency.ts";
import { alternate, rotate, startCpuClock } from "./measure.ts";
import { prepareRawDrain } from "./raw-drain.ts";
import { commandCalls, startBenchRedis } from "./redis-server.ts";

const quick = process.argv.includes("--quick");
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt === -1 ? undefined : process.argv[onlyAt + 1];
const scenarios = ["fanout"];
if (only !== undefined && !scenarios.includes(only)) {
  console.error(`--only takes one of: ${scenarios.join(", ")}`);
  process.exit(2);
}
const repetitions = 3;
const inFlight = 32;
const enqueueCount = quick ? 2_000 : 20_000;
const drainCount = quick ? 2_000 : 10_000;
const drainConcurrency = 10;
const log = pino({ level: "silent" });

interface Result {
  scenario: string;
  unit: string;
  shipbot: number;
  baseline: number;
  ratio: number;
  notes: string;
}

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

/** Runs `count` tasks with `limit` in flight; returns operations per second. */
async function pool(count: number, limit: number, task: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < count) await task(next++);
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

async function drainUntil(count: () => Promise<number>, target: number): Promise<number> {
  const started = performance.now();
  while ((await count()) < target) await new Promise((r) => setTimeout(r, 20));
  return target / ((performance.now() - started) / 1000);
}

interface DrainFigures {
  rate: number;
  commands: number;
  /** CPU per job over the drain: this process (the worker side) plus Redis, µs. */
  cpuUs: number;
}

/**
 * A raw BullMQ worker with a no-op processor. With `ceiling`, the jobs carry shipbot's job options and
 * the worker's fetch is wrapped as shipbot's is, around an acquire that does nothing: what the drain's
 * ratio can reach before the acquire does any work.
 */
async function rawDrain(url: string, rep: number, ceiling = false): Promise<DrainFigures> {
  const name = `raw-drain-${ceiling ? "c" : ""}${rep}`;
  const raw = await prepareRawDrain(url, name, drainCount, drainConcurrency, ceiling ? "wrapped" : "plain");
  await raw.redis.config("RESETSTAT");
  const cpu = await startCpuClock(raw.redis);
  const started = performance.now();
  await raw.drain();
  const rate = drainCount / ((performance.now() - started) / 1000);
  const { nodeUs, redisUs } = await cpu();
  const cpuUs = (nodeUs + redisUs) / drainCount;
  const commands = (await commandCalls(raw.redis)) / drainCount;
  await raw.close();
  return { rate, commands, cpuUs };
}

/**
 * Jobs through the real worker. With `records`, the same process also runs the deriver and the
 * notifier (to a chat that answers at once), and the clock stops only when every job's final card is
 * rendered: the whole cost of a job, not only the worker's share.
 */
async function shipbotDrain(url: string, rep: number, records = false): Promise<DrainFigures> {
  // Distinct targets for every job, as in a fan-out, so the measure is the per-job cost, not waiting in line.
  const config = benchConfig(`bench-d${rep}${records ? "r" : ""}`, drainCount, drainConcurrency);
  const producer = await startProducer(config, url);
  const user = { id: "shell:bench", name: "bench", groups: [] };
  await pool(drainCount, inFlight, (i) =>
    producer.handle({
      id: `d${rep}-${i}`,
      user,
      conversation: { platform: "shell", channel: "bench" },
      text: `/deploy svc-${i} staging v1`,
      receivedAt: Date.now(),
    }),
  );
  let done = 0;
  await producer.redis.config("RESETSTAT");
  const cpu = await startCpuClock(producer.redis);
  const runtime = await createRuntime({
    config,
    redisUrl: url,
    executor: noopExecutor(),
    chats: { shell: silentChat },
    log,
    accept: false,
    work: true,
    notify: records,
    concurrency: drainConcurrency,
  });
  for (const worker of runtime.workers) worker.on("completed", () => done++);
  const rate = records
    ? await drainUntil(async () => {
        // Every final card rendered: nothing left to render and nothing in flight.
        const [pending, inflight] = await Promise.all([
          producer.redis.zcard(producer.keys.cards),
          producer.redis.zcard(producer.keys.cardsInflight),
        ]);
        return done === drainCount && pending === 0 && inflight === 0 ? drainCount : 0;
      }, drainCount)
    : await drainUntil(async () => done, drainCount);
  const { nodeUs, redisUs } = await cpu();
  const cpuUs = (nodeUs + redisUs) / drainCount;
  const commands = (await commandCalls(producer.redis)) / drainCount;
  await runtime.close();
  await producer.ops.queue.obliterate({ force: true });
  await producer.close();
  return { rate, commands, cpuUs };
}

function redisBenchmark(port: number): number {
  const out = execFileSync(
    "redis-benchmark",
    ["-p", String(port), "-q", "-n", quick ? "20000" : "100000", "-t", "set,get"],
    { encoding: "utf8" },
  );
  const rates = [...out.matchAll(/([\d.]+) requests per second/g)].map((m) => Number(m[1]));
  return median(rates);
}

async function main(): Promise<void> {
  const server = await startBenchRedis();
  const results: Result[] = [];
  try {
    const summarize = (runs: Array<{ rate: number; commands: number }>) => ({
      rate: median(runs.map((r) => r.rate)),
      commands: median(runs.map((r) => r.commands)),
      runs: runs.map((r) => Math.round(r.rate)),
    });
    const measure = async (fn: (url: string, rep: number) => Promise<{ rate: number; commands: number }>) => {
      const runs = [];
      for (let rep = 0; rep < repetitions; rep++) runs.push(await fn(server.url, rep));
      return summarize(runs);
    };
    if (only === undefined) {
      // Raw and shipbot alternate, so both sides see the same background load and heap; producer CPU per
      // operation (µs) is printed too, being steadier than the rate on a shared machine.
      const { raw: raws, shipbot: ships } = await alternate(
        repetitions,
        (rep) => rawEnqueue(server.url, rep, enqueueCount, inFlight),
        (rep) => shipbotEnqueue(server.url, rep, enqueueCount, inFlight),
      );
      const cpu = { raw: raws.map((r) => r.cpuUs), shipbot: ships.map((r) => r.cpuUs) };
      const rawAdd = summarize(raws);
      const shipAdd = summarize(ships);
      results.push({
        scenario: "enqueue",
        unit: "commands/s",
        shipbot: Math.round(shipAdd.rate),
        baseline: Math.round(rawAdd.rate),
        ratio: shipAdd.rate / rawAdd.rate,
        notes: `${inFlight} in flight, ${enqueueCount} commands after ${warmUpCount} to warm up; tokenize+zod+authorize+freeze guard+BullMQ's add script (one round trip) vs Queue.add; runs ${shipAdd.runs.join("/")} vs ${rawAdd.runs.join("/")}; producer CPU ${median(cpu.shipbot).toFixed(1)} vs ${median(cpu.raw).toFixed(1)} µs/op`,
      });
      // Alternating too; CPU per job (worker process + Redis) is the steadier figure on a shared machine.
      const [rawDrains = [], ceilingDrains = [], shipDrains = []] = await rotate(repetitions, [
        (rep) => rawDrain(server.url, rep),
        (rep) => rawDrain(server.url, rep, true),
        (rep) => shipbotDrain(server.url, rep),
      ]);
      const rawRun = summarize(rawDrains);
      const shipRun = summarize(shipDrains);
      const drainCpu = {
        raw: median(rawDrains.map((r) => r.cpuUs)),
        shipbot: median(shipDrains.map((r) => r.cpuUs)),
      };
      results.push({
        scenario: "drain",
        unit: "jobs/s",
        shipbot: Math.round(shipRun.rate),
        baseline: Math.round(rawRun.rate),
        ratio: shipRun.rate / rawRun.rate,
        notes: `concurrency ${drainConcurrency}, ${drainCount} jobs, no-op executor; acquire (guards, lease, running state, audit, card signal) inside BullMQ's fetch script vs no-op processor; runs ${shipRun.runs.join("/")} vs ${rawRun.runs.join("/")}, alternating`,
      });
      results.push({
        scenario: "drain CPU per job",
        unit: "µs/job, worker + Redis (lower is better)",
        shipbot: Math.round(drainCpu.shipbot),
        baseline: Math.round(drainCpu.raw),
        ratio: drainCpu.raw / drainCpu.shipbot,
        notes: `the drain runs above: worker process CPU (process.cpuUsage) + Redis CPU (INFO cpu) over the drain ÷ jobs; runs ${shipDrains.map((r) => Math.round(r.cpuUs)).join("/")} vs ${rawDrains.map((r) => Math.round(r.cpuUs)).join("/")}; ratio = baseline/shipbot`,
      });
      const ceilingRun = summarize(ceilingDrains);
      results.push({
        scenario: "drain ceiling",
        unit: "jobs/s",
        shipbot: Math.round(ceilingRun.rate),
        baseline: Math.round(rawRun.rate),
        ratio: ceilingRun.rate / rawRun.rate,
        notes: `not shipbot's worker: raw BullMQ with shipbot's job options and its fetch wrapped around an acquire that does nothing, the most the drain's ratio can be before the acquire works (docs/performance.md, The drain's ceiling); CPU per job ${Math.round(median(ceilingDrains.map((r) => r.cpuUs)))} vs ${Math.round(drainCpu.raw)} µs; runs ${ceilingRun.runs.join("/")}, alternating with the drains above`,
      });
      const shipAll = await measure((url, rep) => shipbotDrain(url, rep, true));
      results.push({
        scenario: "drain with records and cards",
        unit: "jobs/s",
        shipbot: Math.round(shipAll.rate),
        baseline: Math.round(rawRun.rate),
        ratio: shipAll.rate / rawRun.rate,
        notes: `as drain, plus deriver (queued/final states, audit, history) and notifier rendering every final card, same process; runs ${shipAll.runs.join("/")}`,
      });
      for (const rate of [100, 1_000]) {
        const count = quick ? rate : rate * 5;
        const { raw: raws, shipbot: ships } = await alternate(
          repetitions,
          (rep) => rawLatency(server.url, rate, count, `${rate}-${rep}`),
          (rep) => shipbotLatency(server.url, rate, count, `${rate}-${rep}`),
        );
        const of = (runs: Array<{ p50: number; p99: number }>) => ({
          p50: median(runs.map((r) => r.p50)),
          p99: median(runs.map((r) => r.p99)),
          runs: (p: "p50" | "p99") => runs.map((r) => r[p].toFixed(2)).join("/"),
        });
        const ship = of(ships);
        const raw = of(raws);
        results.push({
          scenario: `latency p50 at ${rate}/s`,
          unit: "ms (lower is better)",
          shipbot: Math.round(ship.p50 * 100) / 100,
          baseline: Math.round(raw.p50 * 100) / 100,
          ratio: raw.p50 / ship.p50,
          notes: `command received → executor called, ${count} commands offered open-loop; baseline add → processor start; runs ${ship.runs("p50")} vs ${raw.runs("p50")} ms, alternating; ratio = baseline/shipbot`,
        });
        results.push({
          scenario: `latency p99 at ${rate}/s`,
          unit: "ms (lower is better)",
          shipbot: Math.round(ship.p99 * 100) / 100,
          baseline: Math.round(raw.p99 * 100) / 100,
          ratio: raw.p99 / ship.p99,
          notes: `as above; runs ${ship.runs("p99")} vs ${raw.runs("p99")} ms`,
        });
      }
      const soakRate = Math.max(50, Math.round(shipAll.rate / 2));
      const soaked = await soak(server.url, soakRate, quick ? 10 : 60);
      results.push({
        scenario: "soak",
        unit: "RSS growth after warm-up",
        shipbot: Math.round(soaked.growth * 1000) / 10,
        baseline: 10,
        ratio: soaked.growth < 0.1 ? 1 : 0.1 / soaked.growth,
        notes: `${soaked.commands} commands at ${soakRate}/s (half the measured maximum with cards), ${soaked.errors} errors; RSS ${Math.round(soaked.rssStartMb)} → ${Math.round(soaked.rssEndMb)} MiB; goal: growth < 10% (shipbot column in %)`,
      });
      const perJobShip = shipAdd.commands + shipAll.commands;
      const perJobRaw = rawAdd.commands + rawRun.commands;
      results.push({
        scenario: "redis cost",
        unit: "Redis commands/job",
        shipbot: Math.round(perJobShip * 10) / 10,
        baseline: Math.round(perJobRaw * 10) / 10,
        ratio: perJobRaw / perJobShip,
        notes:
          "INFO commandstats deltas (commands inside Lua scripts included), enqueue + drain with records and cards; ratio = raw/shipbot",
      });
      const ops = redisBenchmark(server.port);
      results.push({
        scenario: "redis limit",
        unit: "jobs/s (theoretical)",
        shipbot: Math.round(ops / perJobShip),
        baseline: Math.round(ops / perJobRaw),
        ratio: perJobRaw / perJobShip,
        notes: `redis-benchmark SET/GET ${Math.round(ops)} ops/s unpipelined, divided by commands per job`,
      });
    }
    const { raw: fanRaw, shipbot: fanShip } = await alternate(
      repetitions,
      (rep) => rawAddBulk(server.url, rep),
      (rep) => shipbotFanOut(server.url, rep),
    );
    const fanMs = median(fanShip);
    const rawMs = median(fanRaw);
    const round = (ms: number) => Math.round(ms * 10) / 10;
    results.push({
      scenario: `fan-out enqueue (${fanOutTargets} targets)`,
      unit: "ms (lower is better)",
      shipbot: round(fanMs),
      baseline: round(rawMs),
      ratio: rawMs / fanMs,
      notes: `one \`deploy * staging v2\` → ${fanOutTargets} jobs queued: tokenize, zod, ${fanOutTargets} authorizations, batch hash, BullMQ's add script 50 jobs a call, all calls sent at once; baseline one raw Queue.addBulk of ${fanOutTargets} jobs; goal ≤ 200 ms; runs ${fanShip.map(round).join("/")} vs ${fanRaw.map(round).join("/")}; ratio = baseline/shipbot`,
    });
    const messages = await fanOutMessages(server.url);
    results.push({
      scenario: `fan-out chat messages (${fanOutTargets} targets)`,
      unit: "messages posted (lower is better)",
      shipbot: messages.posts,
      baseline: fanOutTargets,
      ratio: fanOutTargets / Math.max(1, messages.posts),
      notes: `one batch card edited ${messages.edits} times (edits paced at 1,250 ms, as Slack's chat.update) through worker, deriver and notifier; baseline one card per job; final line "${messages.last}"`,
    });
  } finally {
    await server.stop();
  }

  const machine = {
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    redis: server.version,
    bullmq: (await import("bullmq/package.json", { with: { type: "json" } })).default.version as string,
    quick,
    repetitions,
    at: new Date().toISOString(),
  };
  const file = new URL("./results/latest.json", import.meta.url);
  let written = results;
  if (only !== undefined) {
    // One scenario alone replaces its own rows and keeps the others of the last full run.
    const previous = await readFile(file, "utf8").then(
      (text) => (JSON.parse(text) as { results: Result[] }).results,
      () => [],
    );
    const fresh = new Set(results.map((r) => r.scenario));
    written = [...previous.filter((r) => !fresh.has(r.scenario)), ...results];
  }
  await writeFile(file, `${JSON.stringify({ machine, results: written }, null, 2)}\n`);
  console.log(
    `\nshipbot benchmarks (median of ${repetitions}; ${machine.cpus} cores, Node ${machine.node}, Redis ${machine.redis}, BullMQ ${machine.bullmq})\n`,
  );
  console.table(results.map((r) => ({ ...r, ratio: Math.round(r.ratio * 100) / 100 })));
  if (only === undefined && !process.argv.includes("--no-load")) {
    // The HTTP load (commands, clicks and alerts against `shipbot serve` in child processes) adds its own
    // rows to latest.json, so one `npm run bench` records every scenario.
    console.log("\nHTTP load: bench/http-load.ts");
    const load = spawnSync(process.execPath, [new URL("./http-load.ts", import.meta.url).pathname], {
      stdio: "inherit",
      env: { ...process.env, HTTP_LOAD_SECONDS: process.env.HTTP_LOAD_SECONDS ?? (quick ? "15" : "60") },
    });
    if (load.status !== 0) process.exitCode = 1;
  }
}

await main();
