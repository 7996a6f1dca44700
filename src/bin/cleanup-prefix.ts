import type { Redis } from "ioredis";
import { scanTargets } from "../queue/redis.ts";

/** Deletes every key under a prefix (the demo's throwaway namespace in a shared Redis). */
export async function cleanupPrefix(redis: Redis, prefix: string): Promise<number> {
  let removed = 0;
  for (const node of scanTargets(redis)) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
      cursor = next;
      // One key at a time: in a cluster, keys of one page may live in different slots.
      for (const key of keys) removed += await node.unlink(key);
    } while (cursor !== "0");
  }
  return removed;
}
