/**
 * Producer CPU per enqueued command, shipbot's accept path against raw `Queue.add` with the same payload,
 * 32 in flight, on a Redis of its own: `node bench/enqueue-cpu.ts [count] [rounds] [raw|shipbot]`.
 * The two sides alternate, so both see the same background load; round 0 warms up and is not counted.
 * On a shared machine wall-clock rates are noisy; the CPU this process spends per command much less so.
 * Add `--cpu-prof` to node's flags (and `shipbot` or `raw`) for a profile of one side.
 */
import { type EnqueueFigures, rawEnqueue, shipbotEnqueue } from "./enqueue.ts";
import { startBenchRedis } from "./redis-server.ts";

const [countArg, roundsArg, side] = process.argv.slice(2);
const count = Number(countArg ?? 5_000);
const rounds = Number(roundsArg ?? 3);
const inFlight = 32;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

function show(name: string, runs: EnqueueFigures[]): void {
  if (runs.length === 0) return;
  const cpu = runs.map((r) => r.cpuUs);
  console.log(
    `${name.padEnd(8)} CPU ${median(cpu).toFixed(1)} µs/op (min ${Math.min(...cpu).toFixed(1)}; ${cpu.map((c) => c.toFixed(1)).join(", ")})` +
      ` · ${Math.round(median(runs.map((r) => r.rate)))}/s · Redis CPU ${median(runs.map((r) => r.redisUs)).toFixed(1)} µs/op, ${median(runs.map((r) => r.commands)).toFixed(1)} commands/op`,
  );
}

const server = await startBenchRedis();
try {
  const raw: EnqueueFigures[] = [];
  const shipbot: EnqueueFigures[] = [];
  for (let round = 0; round <= rounds; round++) {
    const a = side === "shipbot" ? undefined : await rawEnqueue(server.url, round, count, inFlight);
    const b = side === "raw" ? undefined : await shipbotEnqueue(server.url, round, count, inFlight);
    if (round === 0) continue;
    if (a) raw.push(a);
    if (b) shipbot.push(b);
  }
  show("raw", raw);
  show("shipbot", shipbot);
  if (raw.length > 0 && shipbot.length > 0)
    console.log(
      `CPU per op, raw ÷ shipbot: ${(median(raw.map((r) => r.cpuUs)) / median(shipbot.map((r) => r.cpuUs))).toFixed(2)}`,
    );
} finally {
  await server.stop();
}
