import type { Redis } from "ioredis";
import { redisCpuUs } from "./redis-server.ts";

/**
 * Starts counting this process's CPU and Redis's (`INFO cpu`); the returned function gives both, in µs,
 * since the start.
 */
export async function startCpuClock(
  redis: Redis,
): Promise<() => Promise<{ nodeUs: number; redisUs: number }>> {
  const redis0 = await redisCpuUs(redis);
  const node0 = process.cpuUsage();
  return async () => {
    const node = process.cpuUsage(node0);
    return { nodeUs: node.user + node.system, redisUs: (await redisCpuUs(redis)) - redis0 };
  };
}

/**
 * `reps` rounds of every run in turn (the first, the second, …, then again), so all see the same
 * background load and heap on a shared machine; the results by run, in order.
 */
export async function rotate<T>(
  reps: number,
  runs: ReadonlyArray<(rep: number) => Promise<T>>,
): Promise<T[][]> {
  const out = runs.map(() => [] as T[]);
  for (let rep = 0; rep < reps; rep++) for (const [i, run] of runs.entries()) out[i]?.push(await run(rep));
  return out;
}

/** `reps` runs of each side, alternating (raw, then shipbot, and again): `rotate` for two. */
export async function alternate<R, S>(
  reps: number,
  raw: (rep: number) => Promise<R>,
  shipbot: (rep: number) => Promise<S>,
): Promise<{ raw: R[]; shipbot: S[] }> {
  const [r = [], s = []] = await rotate<R | S>(reps, [raw, shipbot]);
  return { raw: r as R[], shipbot: s as S[] };
}
