import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isShipbotError } from "../../src/core/errors.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import type { ExecutionContext, ExecutorPort } from "../../src/executors/port.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";

let kube: KubeEmulator;
let dir: string;
let executor: ExecutorPort;
const target = { namespace: "staging", deployment: "api", container: "api" };

beforeAll(async () => {
  kube = await startKubeEmulator({
    deployments: [{ namespace: "staging", name: "api", image: "ghcr.io/acme/api:v1", replicas: 1 }],
    stepMs: 10,
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-fence-"));
  executor = createKubernetesExecutor({
    kubeConfig: loadKubeConfig({ kubeconfigPath: await kube.writeKubeconfig(join(dir, "kubeconfig")) }),
    pollMs: 20,
  });
});
afterAll(async () => {
  await kube?.close();
  await rm(dir, { recursive: true, force: true });
});

const ctx = (jobId: string, fence: number, firstFence?: number): ExecutionContext => ({
  jobId,
  fence,
  ...(firstFence === undefined ? {} : { firstFence }),
  signal: new AbortController().signal,
  onProgress: () => undefined,
});

describe("a job retried after another job changed its target", () => {
  it("stops instead of applying its older change again", async () => {
    // Job A got fence 1 but died before writing; job B (fence 2) then deployed v3.
    await executor.deploy(target, "ghcr.io/acme/api:v3", ctx("jB", 2));
    const before = kube.writes("staging", "api");
    // A comes back with a new lease (fence 3); its first attempt had fence 1.
    const refused = await executor
      .deploy(target, "ghcr.io/acme/api:v2", ctx("jA", 3, 1))
      .catch((e: unknown) => e);
    expect(isShipbotError(refused) && refused.message).toBe(
      "another operation changed api in staging after this one first started (fence 2 > 1); this one stops without applying again",
    );
    expect(kube.writes("staging", "api")).toBe(before);
    expect(kube.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v3",
    );
  });

  it("still resumes its own write after a crash", async () => {
    await executor.deploy(target, "ghcr.io/acme/api:v4", ctx("jC", 4, 4));
    const before = kube.writes("staging", "api");
    const resumed = await executor.deploy(target, "ghcr.io/acme/api:v4", ctx("jC", 5, 4));
    expect(resumed.resumed).toBe(true);
    expect(kube.writes("staging", "api")).toBe(before);
  });
});
