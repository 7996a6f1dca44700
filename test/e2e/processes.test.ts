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

let emulator: KubeEmulator;
let dir: string;
let config: Config;
let env: Record<string, string>;
let producer: Runtime;
const processes: ShipbotProcess[] = [];

beforeEach(async () => {
  emulator = await startKubeEmulator({
    deployments: ["api", "web"].map((name) => ({
      namespace: "staging",
      name,
      image: `ghcr.io/acme/${name}:v1.0.0`,
      previousImages: [`ghcr.io/acme/${name}:v0.9.0`],
      replicas: 3,
    })),
    stepMs: 400,
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-e2e-"));
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
    if (p.child.exitCode === null) p.child.kill("SIGKILL");
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

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function enqueue(text: string): Promise<string> {
  const reply = await producer.handle(chatCommand(text, demoUser));
  expect(reply.error?.message).toBeUndefined();
  return reply.jobIds[0] as string;
}

const finalState = (jobId: string) => () =>
  producer.status.read(jobId).then((s) => (s && terminalPhases.has(s.phase) ? s : undefined));

describe("worker processes", () => {
  it("finishes a job whose worker was killed mid-rollout exactly once, on another worker", async () => {
    const first = start(["worker"]);
    const jobId = await enqueue("/deploy api staging v2");
    await waitFor("the rollout to be under way", async () => {
      const s = await producer.status.read(jobId);
      return s?.phase === "progress" && (s.progress?.updated ?? 0) >= 1 ? s : undefined;
    });
    expect(emulator.writes("staging", "api")).toBe(1);
    first.child.kill("SIGKILL");
    await first.exited;

    start(["worker"]);
    const done: JobState = await waitFor("the job to end", finalState(jobId));
    expect(done.phase).toBe("succeeded");
    expect(done.text).toMatch(
      /^Deployed ghcr\.io\/acme\/api:v2 in \d+s \(finished after a worker restart; applied once\)$/,
    );
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
  });

  it("with two workers and a separate notifier, runs every job once and leaves every card final", async () => {
    start(["worker", "--no-cards"]);
    start(["worker", "--no-cards"]);
    const notifier = start(["worker", "--no-jobs"]);
    const texts = [
      "/deploy api staging v2",
      "/deploy web staging v2",
      "/scale api staging 4",
      "/deploy web staging v3",
      "/rollback api staging",
      "/scale web staging 2",
    ];
    const jobIds: string[] = [];
    for (const text of texts) jobIds.push(await enqueue(text));

    const states = await Promise.all(jobIds.map((id) => waitFor(`job ${id}`, finalState(id), 60_000)));
    // Nothing in these commands can be superseded or refused: each must have run, once. Rollbacks
    // go first, so the order among a target's jobs may differ from the order typed.
    expect(states.map((s) => `${s.phase}: ${s.text}`)).toEqual(
      texts.map(() => expect.stringMatching(/^succeeded: /)),
    );
    // Writes the cluster saw: a deploy or rollback patches once; a scale records its job on the
    // Deployment, then patches the scale subresource.
    expect(emulator.writes("staging", "api")).toBe(1 + 2 + 1);
    expect(emulator.writes("staging", "web")).toBe(1 + 1 + 2);

    // The notifier rendered each job's final state (the card's stored sequence equals the state's).
    const redis = new Redis(redisUrl);
    try {
      await waitFor("every card to show its final state", async () => {
        for (const s of states) {
          const ref = await redis.get(`${config.redisPrefix}:{notify}:card:${s.jobId}`);
          if (!ref || (JSON.parse(ref) as { seq: number }).seq < s.seq) return undefined;
        }
        return true;
      });
    } finally {
      await redis.quit();
    }
    for (const s of states) expect(notifier.output()).toContain(`job ${s.jobId} · requested by demo`);
    expect(notifier.output().match(/✅/g)?.length).toBe(texts.length);
  });
});
