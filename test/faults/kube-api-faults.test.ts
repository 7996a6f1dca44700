/**
 * Promise: no operation is applied twice, and every failure is visible, when the Kubernetes API misbehaves.
 * A runtime (worker + notifier) drives the real Kubernetes executor against the API emulator, which answers
 * 500s or hangs (failNext), and whose connections a TCP proxy in between can cut mid-rollout (a dropped
 * watch). Each job ends with the right result and the Deployment is patched once (or not at all).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";
import { createRecordingChat, quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";
import { waitUntil } from "../helpers/wait-for.ts";

let emulator: KubeEmulator;
let proxy: TcpProxy;
let dir: string;
let config: Config;
let runtime: Runtime;

beforeEach(async () => {
  emulator = await startKubeEmulator({
    stepMs: 250,
    deployments: ["api", "web"].map((name) => ({
      namespace: "staging",
      name,
      image: `ghcr.io/acme/${name}:v1`,
      previousImages: [`ghcr.io/acme/${name}:v0`],
      replicas: 3,
    })),
  });
  proxy = await startTcpProxy(Number(new URL(emulator.url).port));
  dir = await mkdtemp(join(tmpdir(), "shipbot-kube-faults-"));
  const kubeconfigPath = join(dir, "kubeconfig");
  // Same kubeconfig, through the proxy: TLS passes through untouched (same host, same certificate).
  await writeFile(
    kubeconfigPath,
    emulator.kubeconfig().replace(emulator.url, `https://127.0.0.1:${proxy.port}`),
    {
      mode: 0o600,
    },
  );
  config = testConfig();
  runtime = await createRuntime({
    config,
    redisUrl,
    executor: createKubernetesExecutor({
      kubeConfig: loadKubeConfig({ kubeconfigPath }),
      pollMs: 50,
      requestTimeoutMs: 1_000,
    }),
    chats: { shell: createRecordingChat() },
    log: quietLog,
    accept: true,
    work: true,
    // The notifier's side (deriver) records final states.
    notify: true,
  });
});

afterEach(async () => {
  await runtime.close();
  const redis = new Redis(redisUrl);
  await cleanupPrefix(redis, config.redisPrefix);
  await redis.quit();
  await proxy.close();
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

/** Rollouts here take seconds: each wait allows more than the default. */
const waitLong = <T>(what: string, probe: () => Promise<T | undefined>) => waitUntil(what, probe, 25_000);

async function enqueue(text: string): Promise<string> {
  const reply = await runtime.handle(chatCommand(text, demoUser));
  expect(reply.error?.message).toBeUndefined();
  return reply.jobIds[0] as string;
}

const finalState = (jobId: string) => (): Promise<JobState | undefined> =>
  runtime.status.read(jobId).then((s) => (s && terminalPhases.has(s.phase) ? s : undefined));

const imageOf = (name: string): string =>
  emulator.deployment("staging", name).spec.template.spec.containers[0].image;

describe("no operation is applied twice: Kubernetes API faults", () => {
  it("retries a patch answered 500 and applies it once", async () => {
    emulator.failNext({ method: "PATCH", path: /\/deployments\/api/ }, 500, 1);
    const jobId = await enqueue("/deploy api staging v2");
    const done = await waitLong("the job to end", finalState(jobId));
    expect(`${done.phase}: ${done.text}`).toMatch(/^succeeded: Deployed ghcr\.io\/acme\/api:v2 in \d+s/);
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(imageOf("api")).toBe("ghcr.io/acme/api:v2");
  });

  it("gives up after its bounded attempts when the API keeps failing, says why, and wrote nothing", async () => {
    emulator.failNext({ method: "PATCH", path: /\/deployments\/web/ }, 500, 100);
    const jobId = await enqueue("/deploy web staging v2");
    const done = await waitLong("the job to end", finalState(jobId));
    expect(done.phase).toBe("failed");
    expect(done.text).toMatch(/500|server/i);
    expect(emulator.writes("staging", "web")).toBe(0);
    expect(imageOf("web")).toBe("ghcr.io/acme/web:v1");
  });

  it("gives up on a hanging read after its timeout, tries again and applies once", async () => {
    emulator.failNext({ method: "GET", path: /\/deployments\/api$/ }, 0, 1);
    const jobId = await enqueue("/deploy api staging v2");
    const done = await waitLong("the job to end", finalState(jobId));
    expect(done.phase).toBe("succeeded");
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(imageOf("api")).toBe("ghcr.io/acme/api:v2");
  });

  it("resumes following after the watch connection drops mid-rollout, and patches once", async () => {
    const jobId = await enqueue("/deploy api staging v2");
    await waitLong("the rollout to be under way", async () => {
      const s = await runtime.status.read(jobId);
      return s?.phase === "progress" && (s.progress?.updated ?? 0) >= 1 ? s : undefined;
    });
    expect(emulator.writes("staging", "api")).toBe(1);
    // Cut every connection (the watch among them), and make the next watch attempts and a read fail too.
    emulator.failNext({ method: "GET", path: /watch=/ }, 500, 2);
    expect(proxy.dropAll()).toBeGreaterThan(0);
    const done = await waitLong("the job to end", finalState(jobId));
    expect(`${done.phase}: ${done.text}`).toMatch(/^succeeded: Deployed ghcr\.io\/acme\/api:v2 in \d+s/);
    expect(emulator.writes("staging", "api")).toBe(1);
    const deployment = emulator.deployment("staging", "api");
    expect(deployment.status.updatedReplicas).toBe(3);
    expect(deployment.status.availableReplicas).toBe(3);
  });
});
