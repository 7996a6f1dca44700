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
 * `reps` runs of each side, alternating (raw, then shipbot, and again), so both see the same background
 * load and heap on a shared machine.
 */
export async function alternate<R, S>(
  reps: number,
  raw: (rep: number) => Promise<R>,
  shipbot: (rep: number) => Promise<S>,
): Promise<{ raw: R[]; shipbot: S[] }> {
  const out = { raw: [] as R[], shipbot: [] as S[] };
  for (let rep = 0; rep < reps; rep++) {
    out.raw.push(await raw(rep));
    out.shipbot.push(await shipbot(rep));
  }
  return out;
}
