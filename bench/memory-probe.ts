/**
 * Loaded into a shipbot process with `node --import ./bench/memory-probe.ts` by the HTTP load benchmark:
 * every SHIPBOT_BENCH_MEMORY_MS (default 1000) it appends `process.memoryUsage()` as one JSON line to
 * SHIPBOT_BENCH_MEMORY_FILE, so the heap of a process under load can be read from outside it.
 */
import { appendFileSync } from "node:fs";

const file = process.env.SHIPBOT_BENCH_MEMORY_FILE;
if (file !== undefined && file !== "") {
  const everyMs = Number(process.env.SHIPBOT_BENCH_MEMORY_MS ?? "1000");
  const sample = (): void => {
    appendFileSync(file, `${JSON.stringify({ at: Date.now(), ...process.memoryUsage() })}\n`);
  };
  sample();
  setInterval(sample, Number.isFinite(everyMs) && everyMs > 0 ? everyMs : 1000).unref();
}
