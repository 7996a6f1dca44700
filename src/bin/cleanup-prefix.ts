import type { Redis } from "ioredis";

/** Deletes every key under a prefix (the demo's throwaway namespace in a shared Redis). */
export async function cleanupPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = "0";
  let removed = 0;
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) removed += await redis.unlink(...keys);
  } while (cursor !== "0");
  return removed;
}
