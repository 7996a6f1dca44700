import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { freeClusterPort } from "./free-port.ts";

const run = promisify(execFile);

export interface RedisCluster {
  /** For REDIS_URL / createRedis: redis-cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3 */
  url: string;
  ports: number[];
  stop(): Promise<void>;
}

/**
 * A real three-master Redis Cluster from Debian's redis-server on loopback ports, each node in its own
 * temporary directory, for the cluster tests. It stops what it started.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), "shipbot-cluster-"));
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      // Cluster nodes also listen on port + 10000 for their bus: both must be free.
      const port = await freeClusterPort(ports);
      ports.push(port);
      const nodeDir = join(dir, String(port));
      await run("mkdir", ["-p", nodeDir]);
      children.push(
        spawn(
          "redis-server",
          [
            "--port",
            String(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            join(nodeDir, "nodes.conf"),
            "--dir",
            nodeDir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
          ],
          { stdio: "ignore" },
        ),
      );
    }
    for (const port of ports) {
      for (let tries = 0; ; tries++) {
        const ping = await run("redis-cli", ["-p", String(port), "ping"]).catch(() => ({ stdout: "" }));
        if (ping.stdout.trim() === "PONG") break;
        if (tries > 100) throw new Error(`redis-server on ${port} did not start`);
        await sleep(50);
      }
    }
    await run("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    for (let tries = 0; ; tries++) {
      const info = await run("redis-cli", ["-p", String(ports[0]), "cluster", "info"]);
      if (info.stdout.includes("cluster_state:ok")) break;
      if (tries > 100) throw new Error("the cluster did not become ready");
      await sleep(100);
    }
  } catch (error) {
    for (const child of children) child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(",")}`,
    ports,
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null) return resolve();
              child.once("exit", () => resolve());
              child.kill("SIGTERM");
            }),
        ),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
}
