/**
 * SIGTERM to a real `shipbot worker` in the middle of a rollout (what Kubernetes does on every
 * upgrade): it takes no new work, the rollout is applied once and ends succeeded, and the process
 * exits 0 well inside its grace period.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { type ShipbotProcess, spawnShipbot, writeConfig } from "../helpers/spawn-shipbot.ts";
import { quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";

/** The test's stand-in for terminationGracePeriodSeconds: far above the rollout's few seconds. */
const graceMs = 20_000;

let emulator: KubeEmulator;
let dir: string;
let config: Config;
let env: Record<string, string>;
let producer: Runtime;
const processes: ShipbotProcess[] = [];

beforeEach(async () => {
  emulator = await startKubeEmulator({
    deployments: [
      {
        namespace: "staging",
        name: "api",
        image: "ghcr.io/acme/api:v1.0.0",
        previousImages: ["ghcr.io/acme/api:v0.9.0"],
        replicas: 3,
      },
    ],
    stepMs: 300,
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-shutdown-"));
  config = testConfig({ lockDurationMs: 2_000, leaseTtlMs: 2_000, recheckMs: 300 });
  env = {
    SHIPBOT_CONFIG: await writeConfig(dir, config),
    KUBECONFIG: await emulator.writeKubeconfig(join(dir, "kubeconfig")),
    REDIS_URL: redisUrl,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
  };
  producer = await createRuntime({
    config,
    redisUrl,
    executor: createKubernetesExecutor({ kubeConfig: loadKubeConfig({ kubeconfigPath: env.KUBECONFIG }) }),
    chats: {},
    log: quietLog,
    accept: true,
    work: false,
    notify: false,
  });
});

afterEach(async () => {
  for (const p of processes.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    await p.exited;
  }
  await producer.close();
  const redis = new Redis(redisUrl);
  await cleanupPrefix(redis, config.redisPrefix);
  await redis.quit();
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

function start(args: string[]): ShipbotProcess {
  const p = spawnShipbot(args, env);
  processes.push(p);
  return p;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const finalState = (jobId: string) => async (): Promise<JobState | undefined> => {
  const s = await producer.status.read(jobId);
  return s && terminalPhases.has(s.phase) ? s : undefined;
};

describe("graceful shutdown", () => {
  it("finishes the rollout in progress exactly once and exits 0 within the grace period", async () => {
    const worker = start(["worker"]);
    const reply = await producer.handle(chatCommand("/deploy api staging v2", demoUser));
    expect(reply.error?.message).toBeUndefined();
    const jobId = reply.jobIds[0] as string;
    await waitFor("the rollout to be under way", async () => {
      const s = await producer.status.read(jobId);
      return s?.phase === "progress" && (s.progress?.updated ?? 0) >= 1 ? s : undefined;
    });
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(await (await producer.ops.queue.getJob(jobId))?.getState()).toBe("active");

    const signalledAt = Date.now();
    worker.child.kill("SIGTERM");
    const code = await Promise.race([
      worker.exited,
      sleep(graceMs).then(() => {
        throw new Error(`shipbot worker did not exit within ${graceMs} ms of SIGTERM:\n${worker.output()}`);
      }),
    ]);
    // Its output is the shell platform's cards (conversations typed in a terminal); nothing else.
    expect({ code, errors: worker.output().match(/error|shipbot:/gi) ?? [] }).toEqual({
      code: 0,
      errors: [],
    });
    expect(Date.now() - signalledAt).toBeLessThan(graceMs);

    // The job must end succeeded: recorded by the stopping worker, or finished by a new one that
    // reads the Deployment first and does not apply it again.
    let done = await finalState(jobId)();
    if (!done) {
      start(["worker"]);
      done = await waitFor("another worker to carry the job to its end", finalState(jobId));
    }
    expect(done.phase).toBe("succeeded");
    expect(done.text).toMatch(/^Deployed ghcr\.io\/acme\/api:v2 in \d+s/);
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
    const job = await producer.ops.queue.getJob(jobId);
    expect(await job?.getState()).toBe("completed");
  });
});
