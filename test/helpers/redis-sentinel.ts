/**
 * A real Sentinel setup from Debian's redis-server, on loopback ports of its own: a master, one replica and
 * `sentinels` Sentinel processes watching them as `mymaster`, each in a temporary directory. It can force
 * a failover and stops everything it started.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { freePort } from "./free-port.ts";
import { type RedisServer, startRedisServer } from "./redis-server.ts";

export const masterName = "mymaster";

export interface RedisSentinelSet {
  /** For REDIS_URL / createRedis: redis-sentinel://127.0.0.1:s1,127.0.0.1:s2,…/mymaster */
  url: string;
  /** The master the set started with, then the replica. */
  servers: [RedisServer, RedisServer];
  sentinelPorts: number[];
  /** The master's port, as every Sentinel reports it (fails if they disagree). */
  masterPort(): Promise<number>;
  /**
   * Forces a failover (`SENTINEL FAILOVER`) and waits until every Sentinel names the replica as master.
   * Returns the new master's port; the old master is demoted later (see `waitForDemotion`).
   */
  failover(): Promise<number>;
  /** Waits until the server on `port` runs as a replica that is in sync with the master. */
  waitForDemotion(port: number): Promise<void>;
  stop(): Promise<void>;
}

function client(port: number): Redis {
  const redis = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on("error", () => undefined);
  return redis;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** `INFO replication` as a record. */
async function replication(redis: Redis): Promise<Record<string, string>> {
  const text = await redis.info("replication");
  return Object.fromEntries(
    text
      .split("\r\n")
      .filter((line) => line.includes(":"))
      .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)]),
  );
}

export async function startRedisSentinel(options: { sentinels?: number } = {}): Promise<RedisSentinelSet> {
  const count = options.sentinels ?? 3;
  const dir = await mkdtemp(join(tmpdir(), "shipbot-sentinel-"));
  const started: RedisServer[] = [];
  const children: ChildProcess[] = [];
  const sentinelPorts: number[] = [];
  const clients: Redis[] = [];
  const connect = (port: number) => {
    const redis = client(port);
    clients.push(redis);
    return redis;
  };

  async function stop(): Promise<void> {
    for (const redis of clients.splice(0)) redis.disconnect();
    await Promise.all(
      children.splice(0).map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGKILL");
          }),
      ),
    );
    for (const server of started.splice(0)) await server.close();
    await rm(dir, { recursive: true, force: true });
  }

  try {
    const master = await startRedisServer();
    started.push(master);
    const replica = await startRedisServer({ extraArgs: ["--replicaof", "127.0.0.1", String(master.port)] });
    started.push(replica);
    const replicaClient = connect(replica.port);
    await until("the replica to be in sync", async () =>
      (await replication(replicaClient)).master_link_status === "up" ? true : undefined,
    );

    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      // Sentinel rewrites its file as it learns; quorum is a majority; failover timing suits a test.
      await writeFile(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          "protected-mode no",
          `dir ${dir}`,
          `logfile ${join(dir, `sentinel-${port}.log`)}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${master.port} ${Math.floor(count / 2) + 1}`,
          `sentinel down-after-milliseconds ${masterName} 2000`,
          `sentinel failover-timeout ${masterName} 10000`,
          "",
        ].join("\n"),
      );
      const child = spawn("redis-server", [conf, "--sentinel"], { stdio: "ignore" });
      children.push(child);
      sentinelPorts.push(port);
    }
    for (const port of sentinelPorts) {
      const sentinel = connect(port);
      // Each Sentinel knows the replica and every other Sentinel before anyone asks for a failover.
      await until(`Sentinel ${port} to see the replica and the other Sentinels`, async () => {
        const replicas = (await sentinel.call("SENTINEL", "REPLICAS", masterName)) as string[][];
        const others = (await sentinel.call("SENTINEL", "SENTINELS", masterName)) as unknown[];
        const ok = replicas.some((r) => r.join(" ").includes(`port ${replica.port}`));
        return ok && others.length === count - 1 ? true : undefined;
      }).catch(async (error: unknown) => {
        // What the Sentinels said (a port they could not bind, a master they could not reach) goes with it.
        const logs = await Promise.all(
          sentinelPorts.map(async (p) => {
            const text = await readFile(join(dir, `sentinel-${p}.log`), "utf8").catch(() => "(no log)");
            return `--- sentinel ${p}\n${text.split("\n").slice(-15).join("\n")}`;
          }),
        );
        throw new Error(`${error instanceof Error ? error.message : String(error)}\n${logs.join("\n")}`);
      });
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const sentinels = sentinelPorts.map((port) => connect(port));
  async function masterPort(): Promise<number> {
    const ports = new Set<number>();
    for (const sentinel of sentinels) {
      const [, port] = (await sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)) as string[];
      ports.add(Number(port));
    }
    if (ports.size !== 1) throw new Error(`the Sentinels disagree on the master: ${[...ports].join(", ")}`);
    return [...ports][0] as number;
  }

  return {
    url: `redis-sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(",")}/${masterName}`,
    servers: started as [RedisServer, RedisServer],
    sentinelPorts,
    masterPort,
    async failover() {
      const before = await masterPort();
      const [sentinel] = sentinels;
      // Refused (NOGOODSLAVE) while the Sentinel has not yet judged the replica fit: ask again.
      await until("Sentinel to accept the failover", async () =>
        (await sentinel?.call("SENTINEL", "FAILOVER", masterName)) === "OK" ? true : undefined,
      );
      return until("every Sentinel to name the new master", async () => {
        const port = await masterPort();
        return port !== before ? port : undefined;
      });
    },
    async waitForDemotion(port) {
      const redis = connect(port);
      await until(`${port} to be demoted and in sync`, async () => {
        const info = await replication(redis);
        return info.role === "slave" && info.master_link_status === "up" ? true : undefined;
      });
    },
    stop,
  };
}
