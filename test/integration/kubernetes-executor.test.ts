/**
 * The Kubernetes executor through the real @kubernetes/client-node over HTTPS, against the API emulator.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isShipbotError, type ShipbotError } from "../../src/core/errors.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import type { ExecutionContext, ExecutorPort, RolloutProgress, Target } from "../../src/executors/port.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";
import { caCert } from "../emulators/kubernetes/tls.ts";

const api: Target = { namespace: "staging", deployment: "api", container: "api" };
const image = (tag: string) => `ghcr.io/acme/api:${tag}`;

let emulator: KubeEmulator;
let dir: string;
let executor: ExecutorPort;

interface TestContext extends ExecutionContext {
  progress: RolloutProgress[];
  controller: AbortController;
}

function context(jobId: string, fence = 1): TestContext {
  const controller = new AbortController();
  const progress: RolloutProgress[] = [];
  return {
    jobId,
    fence,
    signal: controller.signal,
    controller,
    progress,
    onProgress: (p) => progress.push(p),
  };
}

async function rejection(promise: Promise<unknown>): Promise<ShipbotError> {
  try {
    await promise;
  } catch (error) {
    if (isShipbotError(error)) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}

function makeExecutor(options: { watch?: boolean; requestTimeoutMs?: number } = {}): ExecutorPort {
  return createKubernetesExecutor({
    kubeConfig: loadKubeConfig({ kubeconfigPath: join(dir, "kubeconfig") }),
    pollMs: 20,
    ...options,
  });
}

/** Changes the Deployment directly, as a person with kubectl would. */
async function patchDeployment(body: object): Promise<void> {
  const apps = loadKubeConfig({ kubeconfigPath: join(dir, "kubeconfig") }).makeApiClient(AppsV1Api);
  await apps.patchNamespacedDeployment(
    { name: api.deployment, namespace: api.namespace, body },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

beforeEach(async () => {
  emulator = await startKubeEmulator({
    stepMs: 15,
    msPerSecond: 10,
    deployments: [
      { namespace: "staging", name: "api", image: image("v1"), replicas: 2, progressDeadlineSeconds: 30 },
      { namespace: "staging", name: "worker", image: "ghcr.io/acme/worker:v1", replicas: 1 },
    ],
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-k8s-executor-"));
  await emulator.writeKubeconfig(join(dir, "kubeconfig"));
  executor = makeExecutor();
});

afterEach(async () => {
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

describe("deploy", () => {
  it("patches the image, follows the rollout to done and records the job", async () => {
    const ctx = context("job-1", 3);
    const result = await executor.deploy(api, image("v2"), ctx);

    expect(result).toMatchObject({
      image: image("v2"),
      previousImage: image("v1"),
      revision: 2,
      replicas: 2,
      resumed: false,
    });
    expect(result.summary).toContain("rolled out");
    const stored = emulator.deployment("staging", "api");
    expect(stored.spec.template.spec.containers[0].image).toBe(image("v2"));
    expect(stored.metadata.annotations).toMatchObject({
      "shipbot.dev/job-id": "job-1",
      "shipbot.dev/fence": "3",
    });
    expect(stored.status).toMatchObject({ updatedReplicas: 2, availableReplicas: 2, replicas: 2 });
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(ctx.progress.length).toBeGreaterThan(1);
    expect(ctx.progress.at(-1)).toMatchObject({ done: true, desired: 2, updated: 2, available: 2 });
    expect(ctx.progress.slice(0, -1).every((p) => !p.done)).toBe(true);
  });

  it("works by polling when watching is turned off", async () => {
    const polling = makeExecutor({ watch: false });
    const result = await polling.deploy(api, image("v2"), context("job-poll"));
    expect(result.image).toBe(image("v2"));
    expect(emulator.deployment("staging", "api").status.updatedReplicas).toBe(2);
  });

  it("ends a rollout that never becomes available with a progress-deadline error", async () => {
    const error = await rejection(executor.deploy(api, image("fail-boot"), context("job-fail")));
    expect(error.code).toBe("upstream");
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(
      /^rollout of api in staging exceeded its progress deadline: 1 of 2 replicas updated/,
    );
  });

  it("does not patch again when its own write is already there (a retry after a crash)", async () => {
    const first = context("job-resume");
    const firstRun = executor.deploy(api, image("v2"), {
      ...first,
      onProgress: (p) => {
        first.progress.push(p);
        first.controller.abort(); // the worker dies right after the patch
      },
    });
    const interrupted = await rejection(firstRun);
    expect(interrupted.code).toBe("timeout");
    expect(interrupted.message).toContain("interrupted");
    expect(emulator.writes("staging", "api")).toBe(1);

    const retry = await executor.deploy(api, image("v2"), context("job-resume"));
    expect(retry.resumed).toBe(true);
    expect(retry.image).toBe(image("v2"));
    expect(retry.previousImage).toBe(image("v1"));
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(emulator.deployment("staging", "api").status.availableReplicas).toBe(2);
  });

  it("returns without writing when the image already runs", async () => {
    const result = await executor.deploy(api, image("v1"), context("job-same"));
    expect(result.summary).toContain("already running");
    expect(emulator.writes("staging", "api")).toBe(0);
  });

  it("refuses a stale fencing token without writing", async () => {
    await executor.deploy(api, image("v2"), context("job-new", 5));
    const error = await rejection(executor.deploy(api, image("v3"), context("job-old", 4)));
    expect(error.code).toBe("conflict");
    expect(error.message).toContain("a newer operation owns api in staging");
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(image("v2"));
  });

  it("refuses a paused deployment before writing, instead of waiting for a rollout that cannot start", async () => {
    await patchDeployment({ spec: { paused: true } });
    const writes = emulator.writes("staging", "api");
    const ctx = context("job-paused");
    const bounded = setTimeout(() => ctx.controller.abort(), 3_000);
    const error = await rejection(executor.deploy(api, image("v2"), ctx));
    clearTimeout(bounded);
    expect(error).toMatchObject({ code: "conflict", retryable: false });
    expect(error.message).toBe(
      "api in staging is paused; resume it (kubectl rollout resume) before deploying",
    );
    expect(emulator.writes("staging", "api")).toBe(writes);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(image("v1"));
  });

  it("stops following when the deployment is paused mid-rollout, saying the change waits", async () => {
    // Enough replicas that the rollout takes many controller steps, so the pause lands in the middle.
    await executor.scale(api, 8, context("job-more"));
    const ctx = context("job-paused-later", 2);
    const bounded = setTimeout(() => ctx.controller.abort(), 3_000);
    let paused: Promise<void> | undefined;
    const error = await rejection(
      executor.deploy(api, image("v2"), {
        ...ctx,
        onProgress: (p) => {
          ctx.progress.push(p);
          paused ??= patchDeployment({ spec: { paused: true } });
        },
      }),
    );
    clearTimeout(bounded);
    await paused;
    expect(error).toMatchObject({ code: "conflict", retryable: false });
    expect(error.message).toMatch(
      /^rollout of api in staging stopped: the deployment was paused \([^)]+\); the change stays applied and rolls out once someone runs kubectl rollout resume$/,
    );
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(image("v2"));
  });

  it("re-reads and writes once more after a 409 conflict", async () => {
    emulator.failNext({ method: "PATCH", path: /\/deployments\/api/ }, 409);
    const result = await executor.deploy(api, image("v2"), context("job-409"));
    expect(result.image).toBe(image("v2"));
    expect(emulator.writes("staging", "api")).toBe(1);
  });

  it("names a missing deployment or container", async () => {
    const missing = await rejection(
      executor.deploy({ ...api, deployment: "nope" }, image("v2"), context("j")),
    );
    expect(missing.code).toBe("not_found");
    expect(missing.message).toBe("deployment nope not found in namespace staging");

    const container = await rejection(
      executor.deploy({ ...api, container: "sidecar" }, image("v2"), context("j")),
    );
    expect(container.code).toBe("not_found");
    expect(container.message).toBe(
      "container sidecar not found in deployment api (namespace staging); containers: api",
    );
  });

  it("explains a permission problem without leaking credentials", async () => {
    emulator.failNext({ method: "PATCH" }, 403);
    const error = await rejection(executor.deploy(api, image("v2"), context("job-403")));
    expect(error.code).toBe("forbidden");
    expect(error.message).toBe(
      "shipbot's Kubernetes credentials may not patch deployments in staging: check its RBAC Role",
    );
    expect(error.message).not.toContain("emulator-");
  });

  it("keeps following through API server errors and dropped watches", async () => {
    const ctx = context("job-500");
    let injected = false;
    const result = await executor.deploy(api, image("v2"), {
      ...ctx,
      onProgress: (p) => {
        ctx.progress.push(p);
        if (!injected) {
          injected = true;
          // The next reads and watch requests fail: the follower must retry and resume.
          emulator.failNext({ method: "GET", path: /\/deployments/ }, 500, 3);
        }
      },
    });
    expect(result.image).toBe(image("v2"));
    expect(ctx.progress.at(-1)?.done).toBe(true);
  });

  it("gives up on a hanging request after its timeout and retries", async () => {
    const impatient = makeExecutor({ requestTimeoutMs: 300 });
    const ctx = context("job-hang");
    let injected = false;
    const result = await impatient.deploy(api, image("v2"), {
      ...ctx,
      onProgress: () => {
        if (!injected) {
          injected = true;
          emulator.failNext({ method: "GET", path: /\/deployments\/api$/ }, 0);
        }
      },
    });
    expect(result.image).toBe(image("v2"));
  });
});

describe("rollback", () => {
  it("goes back to the previous revision like kubectl rollout undo", async () => {
    await executor.deploy(api, image("v2"), context("job-a"));
    const result = await executor.rollback(api, undefined, context("job-b", 2));
    expect(result).toMatchObject({
      image: image("v1"),
      previousImage: image("v2"),
      revision: 3,
      resumed: false,
    });
    const stored = emulator.deployment("staging", "api");
    expect(stored.spec.template.spec.containers[0].image).toBe(image("v1"));
    expect(stored.spec.template.metadata.labels["pod-template-hash"]).toBeUndefined();
    expect(stored.metadata.annotations["shipbot.dev/job-id"]).toBe("job-b");
    // Revision 1 was reused as 3, so its old number is gone.
    expect(await executor.history(api)).toEqual([
      { revision: 2, image: image("v2"), current: false },
      { revision: 3, image: image("v1"), current: true },
    ]);
  });

  it("goes to a given revision, and names the known ones when it does not exist", async () => {
    await executor.deploy(api, image("v2"), context("job-a"));
    await executor.deploy(api, image("v3"), context("job-b"));
    const result = await executor.rollback(api, 1, context("job-c"));
    expect(result.image).toBe(image("v1"));
    expect(result.revision).toBe(4);

    const error = await rejection(executor.rollback(api, 7, context("job-d")));
    expect(error.code).toBe("not_found");
    expect(error.message).toBe("revision 7 of api in staging not found; known revisions: 2, 3, 4");
  });

  it("has nothing to roll back to on a fresh deployment", async () => {
    const error = await rejection(executor.rollback(api, undefined, context("job-x")));
    expect(error.message).toBe("no previous revision of api in staging to roll back to");
    expect(emulator.writes("staging", "api")).toBe(0);
  });

  it("names the ReplicaSets, not the deployment, when listing them answers 404", async () => {
    emulator.failNext({ method: "GET", path: /\/replicasets/ }, 404);
    const error = await rejection(executor.rollback(api, undefined, context("job-404")));
    expect(error).toMatchObject({ code: "not_found", retryable: false });
    expect(error.message).toBe(
      "could not list replicasets of deployment api in namespace staging: the Kubernetes API answered 404 (not found)",
    );
    expect(emulator.writes("staging", "api")).toBe(0);
  });

  it("skips when the template already matches, and resumes its own rollback without writing", async () => {
    await executor.deploy(api, image("v2"), context("job-a"));
    const skipped = await executor.rollback(api, 2, context("job-b"));
    expect(skipped.summary).toContain("nothing to roll back");
    expect(emulator.writes("staging", "api")).toBe(1);

    await executor.rollback(api, undefined, context("job-c"));
    expect(emulator.writes("staging", "api")).toBe(2);
    const again = await executor.rollback(api, undefined, context("job-c"));
    expect(again.resumed).toBe(true);
    expect(again.image).toBe(image("v1"));
    expect(emulator.writes("staging", "api")).toBe(2);
  });
});

describe("scale", () => {
  it("scales through the scale subresource and waits until all replicas are available", async () => {
    const ctx = context("job-scale");
    const result = await executor.scale(api, 4, ctx);
    expect(result).toMatchObject({ replicas: 4, revision: 1, resumed: false });
    expect(emulator.deployment("staging", "api").status).toMatchObject({ replicas: 4, availableReplicas: 4 });
    // One claim (annotations) and one scale write.
    expect(emulator.writes("staging", "api")).toBe(2);
    expect(ctx.progress.at(-1)).toMatchObject({ done: true, available: 4 });

    const down = await executor.scale(api, 1, context("job-down"));
    expect(down.replicas).toBe(1);
    expect(emulator.deployment("staging", "api").status).toMatchObject({ replicas: 1, availableReplicas: 1 });

    const resumed = await executor.scale(api, 1, context("job-down"));
    expect(resumed.resumed).toBe(true);
    expect(emulator.writes("staging", "api")).toBe(4);
  });

  it("names the count before its first attempt when a retry finds the scale already applied", async () => {
    const first = context("job-crash", 1);
    const running = executor.scale(api, 4, first);
    // The worker dies after the scale write, while the new pods are still starting.
    while (emulator.deployment("staging", "api").spec.replicas !== 4) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    first.controller.abort();
    expect(await rejection(running)).toMatchObject({ code: "timeout", retryable: true });

    const retried = await executor.scale(api, 4, { ...context("job-crash", 2), firstFence: 1 });
    expect(retried).toMatchObject({ replicas: 4, resumed: true });
    expect(retried.summary).toBe("api in staging scaled from 2 to 4 replicas; resumed after a retry");
    expect(emulator.writes("staging", "api")).toBe(2);
  });
});

describe("status and history", () => {
  it("reports the image, revision and rollout state", async () => {
    await executor.deploy(api, image("v2"), context("job-s"));
    const status = await executor.status(api);
    expect(status).toMatchObject({
      image: image("v2"),
      revision: 2,
      desired: 2,
      updated: 2,
      available: 2,
      lastJobId: "job-s",
    });
    expect(status.rollout.done).toBe(true);
    expect(
      await executor.history({ namespace: "staging", deployment: "worker", container: "worker" }),
    ).toEqual([{ revision: 1, image: "ghcr.io/acme/worker:v1", current: true }]);
  });
});

describe("in a pod, from the service account", () => {
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  afterEach(() => {
    for (const [name, value] of [
      ["KUBERNETES_SERVICE_HOST", saved.host],
      ["KUBERNETES_SERVICE_PORT", saved.port],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  /** A service account mounted as the kubelet mounts it, under `dir` instead of `/`. */
  async function mountServiceAccount(): Promise<string> {
    const sa = join(dir, "var/run/secrets/kubernetes.io/serviceaccount");
    await mkdir(sa, { recursive: true });
    const token = /token: (\S+)/.exec(emulator.kubeconfig())?.[1] ?? "";
    await writeFile(join(sa, "token"), token);
    await writeFile(join(sa, "ca.crt"), caCert);
    await writeFile(join(sa, "namespace"), "shipbot");
    return dir;
  }

  it("talks to the API server with the pod's token and CA when KUBECONFIG is not set", async () => {
    const root = await mountServiceAccount();
    const { hostname, port } = new URL(emulator.url);
    process.env.KUBERNETES_SERVICE_HOST = hostname;
    process.env.KUBERNETES_SERVICE_PORT = port;
    const inPod = createKubernetesExecutor({
      kubeConfig: loadKubeConfig({ serviceAccountRoot: root }),
      pollMs: 20,
    });
    expect((await inPod.status(api)).image).toBe(image("v1"));
    const result = await inPod.deploy(api, image("v2"), context("job-pod"));
    expect(result.image).toBe(image("v2"));
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(image("v2"));
  });

  it("says what is missing when there is neither a kubeconfig nor a complete pod environment", async () => {
    expect(() => loadKubeConfig({ serviceAccountRoot: dir })).toThrow(
      "no Kubernetes configuration: set KUBECONFIG to a kubeconfig file, or run shipbot in a pod with a service account",
    );
    const root = await mountServiceAccount();
    delete process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_PORT;
    expect(() => loadKubeConfig({ serviceAccountRoot: root })).toThrow(
      "found a service account but not the API server: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (Kubernetes sets them in every pod; elsewhere set KUBECONFIG)",
    );
  });
});
