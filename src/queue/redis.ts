import { Redis } from "ioredis";
import { ShipbotError } from "../core/errors.ts";

export interface RedisOptions {
  url: string;
  /**
   * Workers block on Redis and must retry forever (BullMQ requires maxRetriesPerRequest null);
   * the accepting side fails fast instead, so a person hears "queue unavailable" at once.
   */
  role: "worker" | "producer";
}

export function createRedis({ url, role }: RedisOptions): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: role === "worker" ? null : 1,
    enableOfflineQueue: role === "worker",
    connectTimeout: 5_000,
    lazyConnect: false,
  });
  // Without a listener ioredis prints every reconnect failure; callers attach their own logger.
  redis.on("error", () => undefined);
  return redis;
}

/** Turns a Redis connection failure into the message a person should see. */
export function toQueueUnavailable(error: unknown): ShipbotError {
  return new ShipbotError(
    "unavailable",
    "queue unavailable (cannot reach Redis); nothing was done, try again shortly",
    {
      cause: error,
    },
  );
}

/** BullMQ's guarantee needs `noeviction`; anything else can silently drop jobs under memory pressure. */
export async function checkEvictionPolicy(redis: Redis): Promise<string | undefined> {
  try {
    const reply = (await redis.config("GET", "maxmemory-policy")) as string[];
    const policy = reply[1];
    return policy === "noeviction"
      ? undefined
      : `Redis maxmemory-policy is "${policy}"; set it to "noeviction" or jobs can be evicted`;
  } catch {
    // Managed Redis often forbids CONFIG; say so rather than pretend all is well.
    return "cannot read Redis maxmemory-policy (CONFIG GET refused); make sure it is noeviction";
  }
}

/** Waits up to `ms` for the connection; resolves false rather than failing so a process can start degraded. */
export async function waitForReady(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === "ready") return true;
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    redis.once("ready", onReady);
  });
}
