import type { Redis } from "ioredis";
import { afterEach } from "vitest";
import { createRedis } from "../../src/queue/redis.ts";
import { redisUrl } from "./test-runtime.ts";

/**
 * Connections and queues a test file opens, closed after each test (queues and workers first, in
 * reverse order, then the connections), so a failing test leaves nothing running for the next.
 */
export function trackRedis() {
  const opened: Array<{ close(): Promise<unknown> }> = [];
  const redises: Redis[] = [];
  afterEach(async () => {
    for (const c of opened.splice(0).reverse()) await c.close();
    for (const r of redises.splice(0)) r.disconnect();
  });
  return {
    opened,
    connect(): Redis {
      const redis = createRedis({ url: redisUrl, role: "worker" });
      redises.push(redis);
      return redis;
    },
  };
}
