import { Cluster, Redis } from "ioredis";
import { ShipbotError } from "../core/errors.ts";

export interface RedisOptions {
  url: string;
  /**
   * Workers block on Redis and must retry forever (BullMQ requires maxRetriesPerRequest null);
   * the accepting side fails fast instead, so a person hears "queue unavailable" at once.
   */
  role: "worker" | "producer";
}

/**
 * One connection from a URL:
 * - `redis://[user:password@]host:port[/db]` or `rediss://…`: a standalone server;
 * - `redis-cluster://[password@]host:port,host:port`: a Redis Cluster (every queue's keys share a hash tag,
 *   so each queue lives on one shard and the queues spread over the shards);
 * - `redis-sentinel://[password@]host:port,host:port/master-name`: Sentinel-managed failover.
 * Cluster connections are returned as the standalone type: shipbot uses only commands both support.
 */
export function createRedis({ url, role }: RedisOptions): Redis {
  const common = {
    maxRetriesPerRequest: role === "worker" ? null : 1,
    enableOfflineQueue: role === "worker",
    connectTimeout: 5_000,
  };
  const multi = /^redis-(cluster|sentinel):\/\/(?:([^@/]*)@)?([^/]+)(?:\/([A-Za-z0-9._-]+))?$/.exec(url);
  let redis: Redis;
  if (multi) {
    const [, kind, password, hostList = "", name] = multi;
    const nodes = hostList.split(",").map((hostPort) => {
      const [host = "127.0.0.1", port = kind === "cluster" ? "6379" : "26379"] = hostPort.split(":");
      return { host, port: Number(port) };
    });
    const auth = password ? { password: decodeURIComponent(password) } : {};
    if (kind === "cluster") {
      redis = new Cluster(nodes, {
        redisOptions: { ...common, ...auth },
        enableOfflineQueue: common.enableOfflineQueue,
      }) as unknown as Redis;
    } else {
      if (!name)
        throw new ShipbotError(
          "usage",
          "REDIS_URL for Sentinel must name the master: redis-sentinel://host:26379/mymaster",
        );
      // failoverDetector: follow the Sentinels' +switch-master at once. Otherwise connections stay on the
      // old master until Sentinel demotes it (seconds later), and what is written there meanwhile is lost.
      redis = new Redis({ ...common, ...auth, sentinels: nodes, name, failoverDetector: true });
    }
  } else {
    redis = new Redis(url, { ...common, lazyConnect: false });
  }
  // Without a listener ioredis prints every reconnect failure; callers attach their own logger.
  redis.on("error", () => undefined);
  return redis;
}

/** The nodes to scan for keys: every master of a cluster, or the one server. */
export function scanTargets(redis: Redis): Redis[] {
  return redis instanceof Cluster ? (redis as unknown as Cluster).nodes("master") : [redis];
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
