/**
 * A real `redis-server` of the test's own, on a free loopback port, persisting to an append-only file in a
 * temporary directory, so a test can stop it (gracefully or with SIGKILL) and start it again on the same
 * port and data: what a Redis restart or failover looks like to shipbot's processes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { freePort } from "./free-port.ts";

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  /** True while a server process of ours is running. */
  running(): boolean;
  /** Stops the server: SIGTERM (Redis flushes the AOF and exits) or SIGKILL (no goodbye, no flush). */
  stop(signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Starts the server again on the same port and directory, and waits until it answers PING. */
  start(): Promise<void>;
  /** Stops the server if running and removes its directory. */
  close(): Promise<void>;
}

async function ping(url: string): Promise<boolean> {
  const probe = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 500,
  });
  probe.on("error", () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

export async function startRedisServer(options: { extraArgs?: string[] } = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), "shipbot-redis-"));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";

  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--appendonly",
    "yes",
    "--appendfsync",
    "everysec",
    "--maxmemory-policy",
    "noeviction",
    "--dir",
    dir,
    "--save",
    "",
    "--protected-mode",
    "no",
    ...(options.extraArgs ?? []),
  ];

  async function start(): Promise<void> {
    if (child) throw new Error("redis-server is already running");
    const proc = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    proc.stdout?.on("data", (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4_000);
    });
    proc.stderr?.on("data", (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4_000);
    });
    exited = new Promise((resolve) =>
      proc.once("exit", () => {
        if (child === proc) child = undefined;
        resolve();
      }),
    );
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited at start:\n${output}`);
      if (await ping(url)) return;
      await sleep(20);
    }
    throw new Error(`redis-server did not answer PING within 10 s:\n${output}`);
  }

  async function stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const proc = child;
    if (!proc) return;
    proc.kill(signal);
    await exited;
  }

  await start();
  return {
    url,
    port,
    dir,
    running: () => child !== undefined,
    stop,
    start,
    async close() {
      await stop("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it returns a value, taking its errors (Redis may be away) as "not yet". */
export async function waitThroughOutage<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`);
}
