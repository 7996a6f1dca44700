import { Cluster, Redis } from "ioredis";
import { ShipbotError } from "../core/errors.ts";

export interface RedisOptions {
  url: string;
  /**
   * Workers block on Redis and must retry forever (BullMQ requires maxRetriesPerRequest null);
   * the accepting side fails fast instead, so a person hears "queue unavailable" at once.
   */
  role: "worker" | "producer";
  /**
   * Aborted when the process begins to shut down. From then on a connection that loses Redis stops
   * reconnecting: it ends and rejects the commands it had queued, so no step of the shutdown waits for
   * a Redis that is away (a worker connection would otherwise hold them until Redis returned).
   */
  signal?: AbortSignal;
}

/** Delays between attempts until `signal` is aborted; then none: the connection gives up. */
function retryUntil(signal: AbortSignal | undefined, delay: (times: number) => number) {
  return (times: number): number | null => (signal?.aborted ? null : delay(times));
}

/**
 * ioredis's backoff (50 ms doubling, plus up to 200 ms of jitter) capped at 2 s instead of its 5 s: a
 * connection between attempts when shutdown begins gives up only at its next attempt, so the cap bounds
 * how long a SIGTERM during an outage waits.
 */
function reconnectDelay(times: number): number {
  return Math.min(2 ** (times - 1) * 50, 2_000) + Math.floor(Math.random() * 200);
}

/**
 * One connection from a URL:
 * - `redis://[user:password@]host:port[/db]` or `rediss://…`: a standalone server;
 * - `redis-cluster://[password@]host:port,host:port`: a Redis Cluster (every queue's keys share a hash tag,
 *   so each queue lives on one shard and the queues spread over the shards);
 * - `redis-sentinel://[password@]host:port,host:port/master-name`: Sentinel-managed failover.
 * Cluster connections are returned as the standalone type: shipbot uses only commands both support.
 */
export function createRedis({ url, role, signal }: RedisOptions): Redis {
  const common = {
    maxRetriesPerRequest: role === "worker" ? null : 1,
    enableOfflineQueue: role === "worker",
    connectTimeout: 5_000,
  };
  // Options are copied by duplicate(), so the connections BullMQ makes from these give up as well.
  const retryStrategy = retryUntil(signal, reconnectDelay);
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
        clusterRetryStrategy: retryUntil(signal, (times) => Math.min(100 + times * 2, 2_000)),
      }) as unknown as Redis;
    } else {
      if (!name)
        throw new ShipbotError(
          "usage",
          "REDIS_URL for Sentinel must name the master: redis-sentinel://host:26379/mymaster",
        );
      // failoverDetector: follow the Sentinels' +switch-master at once. Otherwise connections stay on the
      // old master until Sentinel demotes it (seconds later), and what is written there meanwhile is lost.
      redis = new Redis({
        ...common,
        ...auth,
        sentinels: nodes,
        name,
        failoverDetector: true,
        retryStrategy,
        sentinelRetryStrategy: retryUntil(signal, (times) => Math.min(times * 10, 1_000)),
      });
    }
  } else {
    redis = new Redis(url, { ...common, lazyConnect: false, retryStrategy });
  }
  // Without a listener ioredis prints every reconnect failure; callers attach their own logger.
  redis.on("error", () => undefined);
  return redis;
}

/**
 * QUIT, or drop the connection when QUIT fails: a fail-fast connection refuses it while Redis is down,
 * and a worker connection that gave up at shutdown (see `signal`) rejects it. Otherwise the connection
 * would go on reconnecting and keep the process alive.
 */
export async function closeRedis(redis: Redis): Promise<void> {
  await redis.quit().catch(() => redis.disconnect());
}

/**
 * Resolves once the connection is ready or has ended. One between reconnect attempts must not be
 * disconnected: ioredis then stops reconnecting without rejecting the commands it had queued, and
 * whatever awaits them waits for ever. After `signal` is aborted such a connection makes one more
 * attempt (within 2 s, see reconnectDelay, plus the connect timeout) and is then one or the other.
 */
export async function whenSettled(redis: Redis): Promise<void> {
  if (redis.status === "ready" || redis.status === "end") return;
  await new Promise<void>((resolve) => {
    const done = () => {
      redis.off("ready", done);
      redis.off("end", done);
      resolve();
    };
    redis.once("ready", done);
    redis.once("end", done);
  });
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
