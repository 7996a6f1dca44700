/**
 * The Kubernetes API emulator behaves like the API server where shipbot depends on it, checked over HTTPS
 * and cross-checked with the real kubectl.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type KubeEmulator, startKubeEmulator } from "./kubernetes/server.ts";
import { caCert } from "./kubernetes/tls.ts";

// biome-ignore lint/suspicious/noExplicitAny: API responses are free-form JSON in these checks
type Json = any;

const seeds = [
  {
    namespace: "staging",
    name: "api",
    image: "ghcr.io/acme/api:v1",
    replicas: 2,
    progressDeadlineSeconds: 30,
  },
  { namespace: "staging", name: "web", image: "ghcr.io/acme/web:v1", replicas: 3, labels: { tier: "front" } },
  { namespace: "production", name: "api", image: "ghcr.io/acme/api:v1", replicas: 6 },
];

let emulator: KubeEmulator;
let dir: string;
let token: string;

beforeEach(async () => {
  emulator = await startKubeEmulator({ stepMs: 15, msPerSecond: 10, deployments: seeds });
  dir = await mkdtemp(join(tmpdir(), "shipbot-kube-emulator-"));
  token = /token: (\S+)/.exec(emulator.kubeconfig())?.[1] ?? "";
});

afterEach(async () => {
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  body: Json;
}

function call(
  method: string,
  path: string,
  options: { body?: unknown; contentType?: string; auth?: boolean } = {},
): Promise<Reply> {
  const url = new URL(path, emulator.url);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method,
        ca: caCert,
        headers: {
          ...(options.auth === false ? {} : { authorization: `Bearer ${token}` }),
          ...(payload === undefined ? {} : { "content-type": options.contentType ?? "application/json" }),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: text === "" ? undefined : JSON.parse(text) }),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** Opens a watch and collects its events until `until` says stop (or the timeout passes). */
function watch(path: string, until: (events: Json[]) => boolean, timeoutMs = 5000): Promise<Json[]> {
  return new Promise((resolve, reject) => {
    const events: Json[] = [];
    let buffer = "";
    const req = httpsRequest(
      new URL(path, emulator.url),
      { ca: caCert, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffer += chunk;
          let newline = buffer.indexOf("\n");
          while (newline >= 0) {
            events.push(JSON.parse(buffer.slice(0, newline)));
            buffer = buffer.slice(newline + 1);
            newline = buffer.indexOf("\n");
          }
          if (until(events)) finish();
        });
        res.on("end", finish);
      },
    );
    const timer = setTimeout(finish, timeoutMs);
    function finish() {
      clearTimeout(timer);
      req.destroy();
      resolve(events);
    }
    req.on("error", (error) => (events.length > 0 ? resolve(events) : reject(error)));
    req.end();
  });
}

async function waitFor<T>(read: () => T, ok: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`condition not met in ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Generation observed, every replica updated and available, nothing old left. */
function rolledOut(status: Json, generation: number): boolean {
  return (
    status?.observedGeneration === generation &&
    status.updatedReplicas === status.replicas &&
    status.availableReplicas === status.replicas &&
    status.conditions?.some((c: Json) => c.reason === "NewReplicaSetAvailable")
  );
}

const deploymentPath = "/apis/apps/v1/namespaces/staging/deployments/api";

describe("HTTP API", () => {
  it("requires the kubeconfig's bearer token", async () => {
    const anonymous = await call("GET", deploymentPath, { auth: false });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toMatchObject({ kind: "Status", reason: "Unauthorized", code: 401 });
    expect((await call("GET", deploymentPath)).status).toBe(200);
  });

  it("serves discovery and namespaces", async () => {
    const apps = await call("GET", "/apis/apps/v1");
    expect(apps.body.resources.map((r: Json) => r.name)).toEqual(
      expect.arrayContaining(["deployments", "deployments/scale", "deployments/status", "replicasets"]),
    );
    expect((await call("GET", "/apis")).body.groups[0].name).toBe("apps");
    const namespaces = await call("GET", "/api/v1/namespaces");
    expect(namespaces.body.items.map((n: Json) => n.metadata.name).sort()).toEqual(["production", "staging"]);
  });

  it("answers a missing deployment with a NotFound Status", async () => {
    const reply = await call("GET", "/apis/apps/v1/namespaces/staging/deployments/nope");
    expect(reply.status).toBe(404);
    expect(reply.body).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'deployments.apps "nope" not found',
      reason: "NotFound",
      details: { name: "nope", group: "apps", kind: "deployments" },
      code: 404,
    });
  });

  it("lists deployments across and within namespaces, by label", async () => {
    const all = await call("GET", "/apis/apps/v1/deployments");
    expect(all.body.kind).toBe("DeploymentList");
    expect(all.body.items).toHaveLength(3);
    const front = await call(
      "GET",
      "/apis/apps/v1/namespaces/staging/deployments?labelSelector=tier%3Dfront",
    );
    expect(front.body.items.map((d: Json) => d.metadata.name)).toEqual(["web"]);
  });

  it("treats metadata.resourceVersion in a patch as a precondition", async () => {
    const before = (await call("GET", deploymentPath)).body;
    const stale = await call("PATCH", deploymentPath, {
      contentType: "application/merge-patch+json",
      body: { metadata: { resourceVersion: "1", labels: { x: "y" } } },
    });
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ kind: "Status", reason: "Conflict", code: 409 });

    const fresh = await call("PATCH", deploymentPath, {
      contentType: "application/merge-patch+json",
      body: { metadata: { resourceVersion: before.metadata.resourceVersion, labels: { x: "y" } } },
    });
    expect(fresh.status).toBe(200);
    expect(fresh.body.metadata.labels.x).toBe("y");
    // Metadata-only changes do not bump the generation; spec changes do.
    expect(fresh.body.metadata.generation).toBe(before.metadata.generation);
    expect(Number(fresh.body.metadata.resourceVersion)).toBeGreaterThan(
      Number(before.metadata.resourceVersion),
    );
    expect(emulator.writes("staging", "api")).toBe(1);
  });

  it("rejects a failed JSON-patch test with 422 and writes nothing", async () => {
    const reply = await call("PATCH", deploymentPath, {
      contentType: "application/json-patch+json",
      body: [
        { op: "test", path: "/spec/replicas", value: 5 },
        { op: "replace", path: "/spec/replicas", value: 1 },
      ],
    });
    expect(reply.status).toBe(422);
    expect(reply.body).toMatchObject({ kind: "Status", reason: "Invalid", code: 422 });
    expect(emulator.deployment("staging", "api").spec.replicas).toBe(2);
    expect(emulator.writes("staging", "api")).toBe(0);
  });

  it("merges containers by name in a strategic merge patch", async () => {
    const reply = await call("PATCH", deploymentPath, {
      contentType: "application/strategic-merge-patch+json",
      body: {
        spec: {
          template: {
            spec: {
              "$setElementOrder/containers": [{ name: "api" }],
              containers: [{ name: "api", image: "ghcr.io/acme/api:v2" }],
            },
          },
        },
      },
    });
    expect(reply.status).toBe(200);
    const [container] = reply.body.spec.template.spec.containers;
    expect(container).toMatchObject({
      name: "api",
      image: "ghcr.io/acme/api:v2",
      imagePullPolicy: "IfNotPresent",
    });
    expect(reply.body.metadata.generation).toBe(2);
  });

  it("rolls out one replica per step with consistent status, then completes", async () => {
    const start = (await call("GET", deploymentPath)).body.metadata.resourceVersion;
    const watching = watch(
      `/apis/apps/v1/namespaces/staging/deployments?watch=1&fieldSelector=metadata.name%3Dapi&resourceVersion=${start}`,
      (events) => events.some((e) => rolledOut(e.object.status, 2)),
    );
    await call("PATCH", deploymentPath, {
      contentType: "application/merge-patch+json",
      body: { spec: { template: { spec: { containers: [{ name: "api", image: "ghcr.io/acme/api:v2" }] } } } },
    });
    const events = await watching;
    expect(events.every((e) => e.type === "MODIFIED" && e.object.metadata.name === "api")).toBe(true);
    for (const { object } of events) {
      const s = object.status;
      const replicas = s.replicas ?? 0;
      expect(s.updatedReplicas ?? 0).toBeLessThanOrEqual(replicas);
      expect(s.availableReplicas ?? 0).toBeLessThanOrEqual(replicas);
      expect(s.unavailableReplicas ?? 0).toBe(replicas - (s.availableReplicas ?? 0));
      expect(replicas).toBeLessThanOrEqual(3); // maxSurge 25% of 2 rounds up to 1
    }
    expect(
      events.some((e) => e.object.status.conditions.some((c: Json) => c.reason === "NewReplicaSetCreated")),
    ).toBe(true);
    const last = events.at(-1)?.object;
    expect(last.status).toMatchObject({
      observedGeneration: 2,
      replicas: 2,
      updatedReplicas: 2,
      availableReplicas: 2,
    });
    expect(last.metadata.annotations["deployment.kubernetes.io/revision"]).toBe("2");

    // Resuming from a later version replays only what came after it.
    const middle = events[Math.floor(events.length / 2)]?.object.metadata.resourceVersion;
    const replay = await watch(
      `/apis/apps/v1/namespaces/staging/deployments?watch=true&fieldSelector=metadata.name%3Dapi&resourceVersion=${middle}`,
      (seen) => seen.length >= events.length - Math.floor(events.length / 2) - 1,
      1000,
    );
    expect(replay[0]?.object.metadata.resourceVersion).toBe(
      events[Math.floor(events.length / 2) + 1]?.object.metadata.resourceVersion,
    );
  });

  it("keeps one ReplicaSet per template, owned by the deployment and numbered by revision", async () => {
    await call("PATCH", deploymentPath, {
      contentType: "application/strategic-merge-patch+json",
      body: { spec: { template: { spec: { containers: [{ name: "api", image: "ghcr.io/acme/api:v2" }] } } } },
    });
    await waitFor(
      () => emulator.deployment("staging", "api").status,
      (s) => rolledOut(s, 2),
    );
    const list = (await call("GET", "/apis/apps/v1/namespaces/staging/replicasets?labelSelector=app%3Dapi"))
      .body;
    expect(list.kind).toBe("ReplicaSetList");
    const deployment = emulator.deployment("staging", "api");
    const byRevision = new Map(
      list.items.map((rs: Json) => [rs.metadata.annotations["deployment.kubernetes.io/revision"], rs]),
    );
    expect([...byRevision.keys()].sort()).toEqual(["1", "2"]);
    for (const rs of list.items) {
      const hash = rs.metadata.labels["pod-template-hash"];
      expect(rs.metadata.name).toBe(`api-${hash}`);
      expect(rs.spec.selector.matchLabels["pod-template-hash"]).toBe(hash);
      expect(rs.spec.template.metadata.labels["pod-template-hash"]).toBe(hash);
      expect(rs.metadata.ownerReferences[0]).toMatchObject({
        kind: "Deployment",
        name: "api",
        uid: deployment.metadata.uid,
        controller: true,
      });
    }
    const current = byRevision.get("2") as Json;
    expect(current.status.availableReplicas).toBe(2);
    expect(
      (await call("GET", `/apis/apps/v1/namespaces/staging/replicasets/${current.metadata.name}`)).body
        .metadata.uid,
    ).toBe(current.metadata.uid);
  });

  it("scales through the scale subresource, step by step, without a new revision", async () => {
    const scale = (await call("GET", `${deploymentPath}/scale`)).body;
    expect(scale).toMatchObject({
      kind: "Scale",
      apiVersion: "autoscaling/v1",
      spec: { replicas: 2 },
      status: { selector: "app=api" },
    });
    const patched = await call("PATCH", `${deploymentPath}/scale`, {
      contentType: "application/merge-patch+json",
      body: { spec: { replicas: 4 } },
    });
    expect(patched.body.spec.replicas).toBe(4);
    const seen = new Set<number>();
    await waitFor(
      () => emulator.deployment("staging", "api").status,
      (s) => {
        seen.add(s.availableReplicas);
        return s.availableReplicas === 4;
      },
    );
    expect(seen.has(3)).toBe(true);
    const stored = emulator.deployment("staging", "api");
    expect(stored.metadata.generation).toBe(2);
    expect(stored.metadata.annotations["deployment.kubernetes.io/revision"]).toBe("1");
    expect(emulator.writes("staging", "api")).toBe(1);
  });

  it("reports ProgressDeadlineExceeded for an image that never becomes ready", async () => {
    await call("PATCH", deploymentPath, {
      contentType: "application/strategic-merge-patch+json",
      body: {
        spec: { template: { spec: { containers: [{ name: "api", image: "ghcr.io/acme/api:fail-boot" }] } } },
      },
    });
    const status = await waitFor(
      () => emulator.deployment("staging", "api").status,
      (s) => s.conditions.some((c: Json) => c.reason === "ProgressDeadlineExceeded"),
    );
    expect(status.conditions.find((c: Json) => c.type === "Progressing")).toMatchObject({ status: "False" });
    expect(status).toMatchObject({
      replicas: 3,
      updatedReplicas: 1,
      availableReplicas: 2,
      unavailableReplicas: 1,
    });
  });

  it("answers injected faults, including a hang", async () => {
    emulator.failNext({ method: "GET", path: /deployments\/api$/ }, 503, 2);
    expect((await call("GET", deploymentPath)).status).toBe(503);
    expect((await call("GET", deploymentPath)).body).toMatchObject({ kind: "Status", code: 503 });
    expect((await call("GET", deploymentPath)).status).toBe(200);
    emulator.failNext({ path: /deployments\/api$/ }, 0);
    const hung = await Promise.race([
      call("GET", deploymentPath).then(() => "answered"),
      new Promise((r) => setTimeout(() => r("hung"), 300)),
    ]);
    expect(hung).toBe("hung");
  });
});

describe("kubectl against the emulator", () => {
  let kubectlError: Error | undefined;

  beforeAll(async () => {
    kubectlError = await new Promise<Error | undefined>((resolve) => {
      execFile("kubectl", ["version", "--client"], (error) =>
        resolve(
          error && (error as NodeJS.ErrnoException).code === "ENOENT"
            ? new Error(
                "kubectl is not on PATH: run scripts/test-setup.sh (installs Debian's kubernetes-client)",
              )
            : undefined,
        ),
      );
    });
  });
  afterAll(() => {
    kubectlError = undefined;
  });

  interface Run {
    code: number;
    stdout: string;
    stderr: string;
  }

  async function kubectl(...args: string[]): Promise<Run> {
    if (kubectlError) throw kubectlError;
    const kubeconfig = await emulator.writeKubeconfig(join(dir, "kubeconfig"));
    return new Promise((resolve) => {
      execFile(
        "kubectl",
        ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), ...args],
        { env: { ...process.env, HOME: dir }, timeout: 20_000 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  async function ok(...args: string[]): Promise<string> {
    const run = await kubectl(...args);
    if (run.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${run.code}): ${run.stderr}`);
    return run.stdout;
  }

  const imageOf = () => emulator.deployment("staging", "api").spec.template.spec.containers[0].image;

  it("get -o json agrees with the emulator", async () => {
    const list = JSON.parse(await ok("get", "deployments", "-n", "staging", "-o", "json"));
    expect(list.items.map((d: Json) => d.metadata.name).sort()).toEqual(["api", "web"]);
    for (const item of list.items) {
      const stored = emulator.deployment("staging", item.metadata.name);
      expect(item.kind).toBe("Deployment");
      expect(item.spec).toEqual(stored.spec);
      expect(item.metadata.uid).toBe(stored.metadata.uid);
      expect(item.status.availableReplicas).toBe(stored.spec.replicas);
    }
    expect(await ok("get", "deployments", "-A")).toMatch(/production\s+api\s+6\/6\s+6\s+6/);
  });

  it("set image, then rollout status succeeds once rolled out", async () => {
    await ok("set", "image", "deployment/api", "api=ghcr.io/acme/api:v2", "-n", "staging");
    const status = await ok("rollout", "status", "deployment/api", "-n", "staging", "--timeout=20s");
    expect(status).toContain('deployment "api" successfully rolled out');
    expect(imageOf()).toBe("ghcr.io/acme/api:v2");
    expect(emulator.deployment("staging", "api").status).toMatchObject({
      updatedReplicas: 2,
      availableReplicas: 2,
      replicas: 2,
    });
  });

  it("rollout status fails on a stuck rollout with the progress-deadline message", async () => {
    await ok("set", "image", "deployment/api", "api=ghcr.io/acme/api:fail-boot", "-n", "staging");
    const run = await kubectl("rollout", "status", "deployment/api", "-n", "staging", "--timeout=20s");
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('deployment "api" exceeded its progress deadline');
  });

  it("rollout undo restores the previous image and renumbers revisions like Kubernetes", async () => {
    await ok("set", "image", "deployment/api", "api=ghcr.io/acme/api:v2", "-n", "staging");
    await ok("rollout", "status", "deployment/api", "-n", "staging", "--timeout=20s");
    await ok("set", "image", "deployment/api", "api=ghcr.io/acme/api:v3", "-n", "staging");
    await ok("rollout", "status", "deployment/api", "-n", "staging", "--timeout=20s");

    await ok("rollout", "undo", "deployment/api", "-n", "staging");
    await ok("rollout", "status", "deployment/api", "-n", "staging", "--timeout=20s");
    expect(imageOf()).toBe("ghcr.io/acme/api:v2");
    // Revision 2's template came back as revision 4: 2 is gone.
    expect(revisions(await ok("rollout", "history", "deployment/api", "-n", "staging"))).toEqual([1, 3, 4]);

    await ok("rollout", "undo", "deployment/api", "-n", "staging", "--to-revision=1");
    await ok("rollout", "status", "deployment/api", "-n", "staging", "--timeout=20s");
    expect(imageOf()).toBe("ghcr.io/acme/api:v1");
    expect(revisions(await ok("rollout", "history", "deployment/api", "-n", "staging"))).toEqual([3, 4, 5]);
    expect(
      emulator.deployment("staging", "api").metadata.annotations["deployment.kubernetes.io/revision"],
    ).toBe("5");

    const missing = await kubectl("rollout", "undo", "deployment/api", "-n", "staging", "--to-revision=2");
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/unable to find (the )?specified revision/);
  });

  it("scale --replicas=4 ends with 4 available", async () => {
    await ok("scale", "deployment/api", "--replicas=4", "-n", "staging");
    await ok("rollout", "status", "deployment/api", "-n", "staging", "--timeout=20s");
    expect(emulator.deployment("staging", "api").status).toMatchObject({ replicas: 4, availableReplicas: 4 });
    expect(await ok("get", "deployment", "api", "-n", "staging")).toMatch(/api\s+4\/4\s+4\s+4/);
  });

  it("rollout history lists revisions with their change cause", async () => {
    await ok("annotate", "deployment/api", "-n", "staging", "kubernetes.io/change-cause=ship v2");
    await ok("set", "image", "deployment/api", "api=ghcr.io/acme/api:v2", "-n", "staging");
    await ok("rollout", "status", "deployment/api", "-n", "staging", "--timeout=20s");
    const history = await ok("rollout", "history", "deployment/api", "-n", "staging");
    expect(revisions(history)).toEqual([1, 2]);
    expect(history).toMatch(/2\s+ship v2/);
    const detail = await ok("rollout", "history", "deployment/api", "-n", "staging", "--revision=2");
    expect(detail).toContain("ghcr.io/acme/api:v2");
  });
});

function revisions(history: string): number[] {
  return history
    .split("\n")
    .map((line) => /^(\d+)\s/.exec(line)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}
