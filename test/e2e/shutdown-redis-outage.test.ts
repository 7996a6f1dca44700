/**
 * Promise: a `shipbot worker` or `shipbot all` told to stop (SIGTERM) while Redis is unreachable exits
 * within seconds instead of waiting for Redis until the kubelet kills it at the end of the grace period,
 * and loses nothing: a job it was running stays in Redis and is handed back by BullMQ's stalled check.
 * A real redis-server of the test's own is stopped under the running processes.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Runtime } from "../../src/bin/create-runtime.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import type { KubeEmulator } from "../emulators/kubernetes/server.ts";
import { type CliStack, startCliStack } from "../helpers/cli-stack.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { type RedisServer, startRedisServer, waitThroughOutage } from "../helpers/redis-server.ts";
import type { ShipbotProcess } from "../helpers/spawn-shipbot.ts";

/** "Promptly": far below any grace period, above the few seconds a connection takes to give up. */
const promptMs = 6_000;

let redis: RedisServer;
let stack: CliStack;
let emulator: KubeEmulator;
let producer: Runtime;
const started: ShipbotProcess[] = [];

beforeEach(async () => {
  redis = await startRedisServer();
  stack = await startCliStack({
    emulator: {
      deployments: [
        {
          namespace: "staging",
          name: "api",
          image: "ghcr.io/acme/api:v1.0.0",
          previousImages: ["ghcr.io/acme/api:v0.9.0"],
          // Six replicas 1.5 s apart: the rollout outlasts the shutdown, so the process cannot just wait for it.
          replicas: 6,
        },
      ],
      stepMs: 1_500,
    },
    redisUrl: redis.url,
  });
  ({ emulator, producer } = stack);
});

afterEach(async () => {
  if (!redis.running()) await redis.start();
  started.length = 0;
  await stack?.close();
  await redis?.close();
});

function start(args: string[]): ShipbotProcess {
  const p = stack.start(args, { LOG_LEVEL: "info" });
  started.push(p);
  return p;
}

function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 25_000): Promise<T> {
  return waitThroughOutage(what, probe, timeoutMs).catch((error: unknown) => {
    const last = started.map((p) => p.output().slice(-1_500)).join("\n---\n");
    throw new Error(`${(error as Error).message}\n--- processes:\n${last}`);
  });
}

/** Sends SIGTERM and resolves with the exit code, or fails if the process outlives `promptMs`. */
async function terminate(p: ShipbotProcess, what: string): Promise<number | null> {
  const signalledAt = Date.now();
  p.child.kill("SIGTERM");
  const code = await Promise.race([
    p.exited,
    sleep(promptMs).then(() => {
      throw new Error(
        `${what} did not exit within ${promptMs} ms of SIGTERM during a Redis outage:\n${p
          .output()
          .split("\n")
          .map((l) => l.match(/"msg":"[^"]*"/)?.[0] ?? l.slice(0, 200))
          .join("\n")}`,
      );
    }),
  ]);
  expect(Date.now() - signalledAt).toBeLessThan(promptMs);
  return code;
}

const finalState = (jobId: string) => async (): Promise<JobState | undefined> => {
  const s = await producer.status.read(jobId);
  return s && terminalPhases.has(s.phase) ? s : undefined;
};

describe("shutdown during a Redis outage", () => {
  it.each([["worker"], ["all"]])("%s with nothing running exits 0 promptly on SIGTERM", async (mode) => {
    const p = start([mode]);
    await waitFor(`${mode} to start`, async () =>
      p.output().includes('"msg":"shipbot started"') ? true : undefined,
    );
    await redis.stop();
    // Let every connection notice the outage and start reconnecting, as in a real one.
    await sleep(500);
    expect(await terminate(p, `shipbot ${mode}`)).toBe(0);
  });

  it("worker started while Redis is away exits promptly on SIGTERM, its first trim still queued", async () => {
    await redis.stop();
    const p = start(["worker"]);
    await waitFor("worker to start without Redis", async () =>
      p.output().includes('"msg":"shipbot started"') ? true : undefined,
    );
    expect(await terminate(p, "shipbot worker")).toBe(0);
  });

  it("worker leaves its running job to the stalled check, which finishes it once after Redis returns", async () => {
    const worker = start(["worker"]);
    const reply = await producer.handle(chatCommand("/deploy api staging v2", demoUser));
    expect(reply.error?.message).toBeUndefined();
    const jobId = reply.jobIds[0] as string;
    await waitFor("the rollout to be under way", async () => {
      const s = await producer.status.read(jobId);
      return s?.phase === "progress" ? s : undefined;
    });
    expect(emulator.writes("staging", "api")).toBe(1);

    await redis.stop();
    await sleep(500);
    expect(await terminate(worker, "shipbot worker")).toBe(0);

    // Nothing lost: the job is still there, and a new worker carries it to its end without applying again.
    await redis.start();
    const state = await waitFor("the test's connection to be back", async () =>
      (await producer.ops.queue.getJob(jobId))?.getState(),
    );
    expect(state).toBe("active");
    start(["worker"]);
    const done = await waitFor("another worker to carry the job to its end", finalState(jobId));
    expect(done.phase).toBe("succeeded");
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
    expect(await (await producer.ops.queue.getJob(jobId))?.getState()).toBe("completed");
  });
});
