/**
 * The GitOps executor against the GitHub emulator (the config repository) and the Kubernetes emulator (the
 * cluster). A small loop in the test plays Argo CD / Flux: when the config file on main changes, it patches
 * the Deployment to match.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isScalar, parseDocument, parse as parseYaml } from "yaml";
import { isShipbotError, type ShipbotError } from "../../src/core/errors.ts";
import {
  createGitOpsExecutor,
  type GitOpsFileConfig,
  gitOpsTargetKey,
} from "../../src/executors/gitops/index.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import type { ExecutionContext, ExecutorPort, RolloutProgress, Target } from "../../src/executors/port.ts";
import { createGitHubClient, type GitHubClient } from "../../src/github/index.ts";
import { type GitHubEmulator, startGitHubEmulator } from "../emulators/github/index.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";

const CONFIG = "acme/config";
const PATH = "apps/api/production/kustomization.yaml";
const VALUES = "apps/api/production/values.yaml";
const api: Target = { namespace: "production", deployment: "api", container: "api" };
const image = (tag: string) => `ghcr.io/acme/api:${tag}`;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const kustomization = `# api in production: shipbot bumps the tag below.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../base/api   # shared manifests
images:
  - name: ghcr.io/acme/api   # built by CI
    newTag: "0000000"   # do not edit by hand
replicas:
  - name: api
    count: 2
`;

const values = `# Helm values for api
image:
  repository: ghcr.io/acme/api
  tag: 0000000 # managed by shipbot
replicaCount: 2
`;

let gh: GitHubEmulator;
let kube: KubeEmulator;
let dir: string;
let github: GitHubClient;
let watcher: ExecutorPort;
let sync: { stop(): Promise<void>; applied: string[] } | undefined;

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
  throw new Error("expected a failure");
}

function fileConfig(overrides: Partial<GitOpsFileConfig> = {}): GitOpsFileConfig {
  return {
    repo: CONFIG,
    branch: "main",
    path: PATH,
    format: "kustomize-images",
    imageName: "ghcr.io/acme/api",
    mode: "commit",
    ...overrides,
  };
}

function executor(
  config: GitOpsFileConfig = fileConfig(),
  overrides: { timeoutMs?: number } = {},
): ExecutorPort {
  return createGitOpsExecutor({
    github,
    kubeExecutorForWatching: watcher,
    repos: { [gitOpsTargetKey(api)]: config },
    timeoutMs: overrides.timeoutMs ?? 10_000,
    pollMs: 10,
  });
}

/** The scalar at `path` as written in the file (YAML would read `1.10` as 1.1 and `0000000` as 0). */
function tagText(text: string, path: Array<string | number>): string {
  const node = parseDocument(text).getIn(path, true);
  return isScalar(node) && typeof node.source === "string" ? node.source : String(node);
}

/** Plays the GitOps controller: applies the image (and replicas) the file on main declares. */
function startSync(path = PATH): { stop(): Promise<void>; applied: string[] } {
  const apps = loadKubeConfig({ kubeconfigPath: join(dir, "kubeconfig") }).makeApiClient(AppsV1Api);
  const applied: string[] = [];
  let stopped = false;
  // The seeded file is what the cluster already runs: only changes from it are synced.
  let last = path === PATH ? kustomization : values;
  const loop = (async () => {
    while (!stopped) {
      const text = gh.file(CONFIG, "main", path);
      if (text !== undefined && text !== last) {
        last = text;
        const doc = parseYaml(text) as {
          images?: Array<{ name: string; newTag: string }>;
          replicas?: Array<{ count: number }>;
          image?: { repository: string; tag: string | number };
          replicaCount?: number;
        };
        // The tag as the file spells it: an unquoted 1.10 deploys 1.10, not the number 1.1.
        const tag = tagText(text, doc.images === undefined ? ["image", "tag"] : ["images", 0, "newTag"]);
        const replicas = doc.replicas?.[0]?.count ?? doc.replicaCount;
        applied.push(tag);
        await apps.patchNamespacedDeployment(
          {
            name: api.deployment,
            namespace: api.namespace,
            body: {
              spec: {
                ...(replicas === undefined ? {} : { replicas }),
                template: { spec: { containers: [{ name: api.container, image: image(tag) }] } },
              },
            },
          },
          setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return {
    applied,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** Changes the Deployment directly, as a person with kubectl would. */
async function patchDeployment(body: object): Promise<void> {
  const apps = loadKubeConfig({ kubeconfigPath: join(dir, "kubeconfig") }).makeApiClient(AppsV1Api);
  await apps.patchNamespacedDeployment(
    { name: api.deployment, namespace: api.namespace, body },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

const puts = () => gh.requests().filter((r) => r.method === "PUT" && r.path.includes("/contents/"));
const configCommits = async () =>
  (await github.rest.repos.listCommits({ owner: "acme", repo: "config", sha: "main", per_page: 100 })).data;

beforeEach(async () => {
  gh = await startGitHubEmulator();
  gh.createRepo(CONFIG, { [PATH]: kustomization, [VALUES]: values, "README.md": "# config\n" });
  github = createGitHubClient({
    auth: { kind: "token", token: "ghp_test" },
    baseUrl: gh.url,
    backoffUnitMs: 1,
    writeSpacingMs: 0,
    notifySpacingMs: 0,
    log: quiet,
  });
  kube = await startKubeEmulator({
    stepMs: 10,
    msPerSecond: 10,
    deployments: [
      {
        namespace: "production",
        name: "api",
        image: image("0000000"),
        replicas: 2,
        previousImages: [image("aaaaaaa")],
      },
    ],
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-gitops-"));
  await kube.writeKubeconfig(join(dir, "kubeconfig"));
  watcher = createKubernetesExecutor({
    kubeConfig: loadKubeConfig({ kubeconfigPath: join(dir, "kubeconfig") }),
    pollMs: 10,
    watch: false,
  });
  sync = undefined;
});

afterEach(async () => {
  await sync?.stop();
  await gh.close();
  await kube.close();
  await rm(dir, { recursive: true, force: true });
});

describe("deploy by commit", () => {
  it("commits exactly the new tag and finishes when the cluster runs it", async () => {
    sync = startSync();
    const ctx = context("job-1", 4);
    const result = await executor().deploy(api, image("3f2c1ab"), ctx);

    expect(gh.file(CONFIG, "main", PATH)).toBe(
      kustomization.replace('newTag: "0000000"', 'newTag: "3f2c1ab"'),
    );
    const [head] = await configCommits();
    expect(head?.commit.message).toBe(
      [
        "deploy ghcr.io/acme/api:3f2c1ab to api in production",
        "",
        "Requested through shipbot (job job-1).",
        "",
        "Shipbot-Job: job-1",
        "Shipbot-Fence: 4",
        "Shipbot-Target: production/api",
        "Shipbot-Previous: 0000000",
      ].join("\n"),
    );
    expect(result).toMatchObject({
      image: image("3f2c1ab"),
      previousImage: image("0000000"),
      replicas: 2,
      resumed: false,
    });
    expect(result.summary).toContain(`committed ${head?.sha.slice(0, 7)} to acme/config/${PATH}`);
    expect(kube.deployment("production", "api").spec.template.spec.containers[0].image).toBe(
      image("3f2c1ab"),
    );
    expect(kube.writes("production", "api")).toBe(1);
    expect(ctx.progress.at(-1)).toMatchObject({ done: true, updated: 2, available: 2 });
    expect(puts()).toHaveLength(1);
  });

  it("writes a Helm values path in place", async () => {
    sync = startSync(VALUES);
    await executor(fileConfig({ path: VALUES, format: "yaml-path", yamlPath: "image.tag" })).deploy(
      api,
      image("1.10"),
      context("job-helm"),
    );
    expect(gh.file(CONFIG, "main", VALUES)).toBe(values.replace("tag: 0000000", 'tag: "1.10"'));
    expect(kube.deployment("production", "api").spec.template.spec.containers[0].image).toBe(image("1.10"));
  });

  it("quotes an unquoted numeric tag, which YAML reads as a number, when that tag is deployed", async () => {
    // Spelled like the tag, read as the number 20240101 (Helm would render 2.0240101e+07): writing it
    // quoted is what makes every tool read the tag.
    const numeric = kustomization.replace('newTag: "0000000"', "newTag: 20240101");
    gh.commit(CONFIG, "main", "pin a dated build", { files: { [PATH]: numeric } });
    sync = startSync();
    const result = await executor().deploy(api, image("20240101"), context("job-dated"));
    expect(puts()).toHaveLength(1);
    expect(gh.file(CONFIG, "main", PATH)).toBe(
      kustomization.replace('newTag: "0000000"', 'newTag: "20240101"'),
    );
    expect(result.previousImage).toBe(image("20240101"));
    const [head] = await configCommits();
    expect(head?.commit.message).toContain("Shipbot-Previous: 20240101");
    // Quoted now: deploying it again commits nothing.
    await executor().deploy(api, image("20240101"), context("job-dated-again"));
    expect(puts()).toHaveLength(1);
  });

  it("keeps an unquoted tag as the file spells it: 0000000 and 1.10, not the numbers 0 and 1.1", async () => {
    sync = startSync(VALUES);
    const gitops = executor(fileConfig({ path: VALUES, format: "yaml-path", yamlPath: "image.tag" }));
    const first = await gitops.deploy(api, image("1.10"), context("job-float"));
    expect(first.previousImage).toBe(image("0000000"));
    const [head] = await configCommits();
    expect(head?.commit.message).toContain("Shipbot-Previous: 0000000");
    expect(gh.file(CONFIG, "main", VALUES)).toBe(values.replace("tag: 0000000", 'tag: "1.10"'));

    // Quoted, deploying it again changes nothing.
    const again = await gitops.deploy(api, image("1.10"), context("job-float-again"));
    expect(puts()).toHaveLength(1);
    expect(again.summary).toContain("already held it; nothing committed");

    const next = await gitops.deploy(api, image("1.11"), context("job-float-next"));
    expect(next.previousImage).toBe(image("1.10"));
    expect(gh.file(CONFIG, "main", VALUES)).toBe(values.replace("tag: 0000000", 'tag: "1.11"'));
  });

  it("reads again and keeps the other edit when the file changes between read and write", async () => {
    sync = startSync();
    // A person edits the file while shipbot holds the old blob sha: the contents API answers 409.
    let raced = false;
    const racing = createGitHubClient({
      auth: { kind: "token", token: "ghp_test" },
      baseUrl: gh.url,
      backoffUnitMs: 1,
      writeSpacingMs: 0,
      notifySpacingMs: 0,
      log: quiet,
      fetch: async (input, init) => {
        if (!raced && init?.method === "PUT") {
          raced = true;
          const text = gh.file(CONFIG, "main", PATH) ?? "";
          gh.commit(CONFIG, "main", "more replicas", {
            files: { [PATH]: text.replace("count: 2", "count: 3") },
          });
        }
        return fetch(input, init);
      },
    });
    const gitops = createGitOpsExecutor({
      github: racing,
      kubeExecutorForWatching: watcher,
      repos: { [gitOpsTargetKey(api)]: fileConfig() },
      timeoutMs: 10_000,
      pollMs: 10,
    });
    const result = await gitops.deploy(api, image("3f2c1ab"), context("job-race"));
    expect(puts().map((r) => r.status)).toEqual([409, 200]);
    expect(gh.file(CONFIG, "main", PATH)).toBe(
      kustomization.replace('newTag: "0000000"', 'newTag: "3f2c1ab"').replace("count: 2", "count: 3"),
    );
    expect(result.replicas).toBe(3);
  });

  it("gives up with a conflict when the file keeps changing", async () => {
    gh.failNext({ method: "PUT", path: /\/contents\// }, 409, 10);
    const error = await rejection(executor().deploy(api, image("3f2c1ab"), context("job-busy")));
    expect(error.code).toBe("conflict");
    expect(error.message).toBe(
      `acme/config/${PATH} kept changing while shipbot wrote it (4 attempts); try again`,
    );
    expect(gh.file(CONFIG, "main", PATH)).toBe(kustomization);
  });

  it("does not commit again when a job is retried; it resumes the wait", async () => {
    const first = context("job-retry", 2);
    // The worker dies while waiting: nothing syncs yet, and the job's signal aborts.
    const interrupted = executor().deploy(api, image("3f2c1ab"), first);
    while (first.progress.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    first.controller.abort();
    const error = await rejection(interrupted);
    expect(error).toMatchObject({ code: "timeout", retryable: true });
    expect(error.message).toContain("the change stays in git and a retry waits again");

    sync = startSync();
    const commitsBefore = (await configCommits()).length;
    const result = await executor().deploy(api, image("3f2c1ab"), context("job-retry", 2));
    expect(result).toMatchObject({ resumed: true, image: image("3f2c1ab"), previousImage: image("0000000") });
    expect(puts()).toHaveLength(1);
    expect(await configCommits()).toHaveLength(commitsBefore);
    expect(sync.applied).toEqual(["3f2c1ab"]);
  });

  it("refuses to overwrite a newer operation or a later edit", async () => {
    sync = startSync();
    await executor().deploy(api, image("bbbbbbb"), context("job-new", 9));
    const stale = await rejection(executor().deploy(api, image("ccccccc"), context("job-old", 3)));
    expect(stale.code).toBe("conflict");
    expect(stale.message).toContain("a newer operation (job job-new, fence 9 > 3)");

    gh.commit(CONFIG, "main", "hand edit", {
      files: { [PATH]: (gh.file(CONFIG, "main", PATH) ?? "").replace("bbbbbbb", "ddddddd") },
    });
    const later = await rejection(executor().deploy(api, image("bbbbbbb"), context("job-new", 9)));
    expect(later.message).toContain("changed after this job's commit");
    expect(puts()).toHaveLength(1);
  });

  it("stops a retried job when another operation committed after its first attempt began", async () => {
    sync = startSync();
    // Job A took fence 1 and died before committing; job B (fence 2) then deployed bbbbbbb.
    await executor().deploy(api, image("bbbbbbb"), context("job-b", 2));
    // A comes back with a new lease (fence 3); its first attempt had fence 1.
    const error = await rejection(
      executor().deploy(api, image("aaaaaaa"), { ...context("job-a", 3), firstFence: 1 }),
    );
    expect(error).toMatchObject({ code: "conflict", retryable: false });
    expect(error.message).toBe(
      `another operation (job job-b, fence 2 > 1) changed acme/config/${PATH} after this job first started; this one stops without writing`,
    );
    expect(puts()).toHaveLength(1);
    expect(gh.file(CONFIG, "main", PATH)).toContain('newTag: "bbbbbbb"');
    expect(kube.deployment("production", "api").spec.template.spec.containers[0].image).toBe(
      image("bbbbbbb"),
    );
  });

  it("still finishes a retried job whose commit is in, after another operation committed", async () => {
    sync = startSync();
    const gitops = executor(fileConfig({ replicasPath: "replicas.0.count" }));
    // Job A (fence 1) commits its tag and its worker dies; job B (fence 2) then scales through the file.
    await gitops.deploy(api, image("3f2c1ab"), context("job-a", 1));
    await gitops.scale(api, 3, context("job-b", 2));
    const result = await gitops.deploy(api, image("3f2c1ab"), { ...context("job-a", 3), firstFence: 1 });
    expect(result).toMatchObject({ resumed: true, image: image("3f2c1ab") });
    expect(puts()).toHaveLength(2);
  });

  it("fails at the progress deadline, not at the sync timeout, when the new image never becomes ready", async () => {
    sync = startSync();
    // 3 emulated seconds: the controller declares the rollout stuck well before the 10 s sync timeout.
    await patchDeployment({ spec: { progressDeadlineSeconds: 3 } });
    const started = Date.now();
    const error = await rejection(executor().deploy(api, image("fail-boot"), context("job-stuck")));
    expect(error).toMatchObject({ code: "upstream", retryable: false });
    expect(error.message).toMatch(
      /^rollout of api in production exceeded its progress deadline: \d of 2 replicas updated, \d available \(the new pods are not becoming available; the old ones keep serving\); the change stays in git$/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("stops at once, not at the sync timeout, when the deployment is paused after the commit", async () => {
    const ctx = context("job-paused");
    const started = Date.now();
    const running = executor(fileConfig(), { timeoutMs: 3_000 }).deploy(api, image("3f2c1ab"), ctx);
    // The commit is in and the job waits for the sync; only then does someone pause the Deployment.
    while (ctx.progress.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await patchDeployment({ spec: { paused: true } });
    sync = startSync();
    const error = await rejection(running);
    expect(error).toMatchObject({ code: "conflict", retryable: false });
    expect(error.message).toMatch(
      /^rollout of api in production stopped: the deployment was paused \(.+\); the change stays in git and rolls out once someone runs kubectl rollout resume$/,
    );
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(gh.file(CONFIG, "main", PATH)).toContain('newTag: "3f2c1ab"');
    expect(kube.deployment("production", "api").spec.template.spec.containers[0].image).toBe(
      image("3f2c1ab"),
    );
  });

  it("fails clearly after bounded retries when GitHub is down, having changed nothing", async () => {
    gh.failNext({}, 500, 100);
    const error = await rejection(executor().deploy(api, image("3f2c1ab"), context("job-down")));
    expect(error.code).toBe("upstream");
    expect(error.message).toBe(
      `GitHub is failing (HTTP 500) and kept failing after retries (read ${PATH} on main in acme/config); nothing more was attempted`,
    );
    expect(gh.requests()).toHaveLength(4);
    expect(gh.file(CONFIG, "main", PATH)).toBe(kustomization);
    expect(kube.writes("production", "api")).toBe(0);
  });

  it("times out with a message that says where to look when nothing syncs", async () => {
    const error = await rejection(
      executor(fileConfig(), { timeoutMs: 200 }).deploy(api, image("3f2c1ab"), context("j")),
    );
    expect(error.code).toBe("timeout");
    expect(error.message).toMatch(
      /^api in production did not pick up the change within 1 s while waiting for acme\/config@[0-9a-f]{7} to be synced; the change stays in git: check that Argo CD or Flux syncs it$/,
    );
  });
});

describe("deploy by pull request", () => {
  it("opens a pull request, merges it and waits for the cluster", async () => {
    sync = startSync();
    const result = await executor(fileConfig({ mode: "pull-request", autoMerge: true })).deploy(
      api,
      image("3f2c1ab"),
      context("job-pr"),
    );
    expect(gh.pulls(CONFIG)).toEqual([
      { number: 1, head: "shipbot/production-api-job-pr", base: "main", state: "closed", merged: true },
    ]);
    expect(gh.file(CONFIG, "main", PATH)).toBe(
      kustomization.replace('newTag: "0000000"', 'newTag: "3f2c1ab"'),
    );
    const [head] = await configCommits();
    expect(head?.commit.message).toContain("deploy ghcr.io/acme/api:3f2c1ab to api in production (#1)");
    expect(head?.commit.message).toContain("Shipbot-Job: job-pr");
    expect(result.summary).toContain("merged acme/config#1");
    // The branch is deleted after the merge.
    expect(gh.file(CONFIG, "shipbot/production-api-job-pr", PATH)).toBeUndefined();

    const again = await executor(fileConfig({ mode: "pull-request", autoMerge: true })).deploy(
      api,
      image("3f2c1ab"),
      context("job-pr"),
    );
    expect(again.resumed).toBe(true);
    expect(gh.pulls(CONFIG)).toHaveLength(1);
  });

  it("waits for a person to merge when autoMerge is off", async () => {
    sync = startSync();
    const ctx = context("job-review");
    const running = executor(fileConfig({ mode: "pull-request" })).deploy(api, image("3f2c1ab"), ctx);
    while (gh.pulls(CONFIG).length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    while (!ctx.progress.some((p) => p.message.includes("pull request acme/config#1 to be merged"))) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(gh.file(CONFIG, "main", PATH)).toBe(kustomization);
    await github.rest.pulls.merge({ owner: "acme", repo: "config", pull_number: 1 });
    const result = await running;
    expect(result.image).toBe(image("3f2c1ab"));
  });
});

describe("rollback, scale, status", () => {
  it("rolls back to the previous image the cluster ran, through git", async () => {
    sync = startSync();
    await executor().deploy(api, image("3f2c1ab"), context("job-d"));
    const result = await executor().rollback(api, undefined, context("job-r"));
    expect(gh.file(CONFIG, "main", PATH)).toBe(kustomization);
    expect(result).toMatchObject({ image: image("0000000"), previousImage: image("3f2c1ab") });
    expect(result.summary).toContain("rolled back to ghcr.io/acme/api:0000000 (revision 2)");

    const history = await executor().history(api);
    const oldest = history[0];
    expect(oldest?.image).toBe(image("aaaaaaa"));
    await executor().rollback(api, oldest?.revision, context("job-r2"));
    expect(gh.file(CONFIG, "main", PATH)).toContain('newTag: "aaaaaaa"');
  });

  it("refuses scale without a replicas path, and scales through git with one", async () => {
    const refused = await rejection(executor().scale(api, 4, context("job-s0")));
    expect(refused.message).toBe(
      `scaling is managed by GitOps for this service: change replicas in acme/config/${PATH}`,
    );
    sync = startSync();
    const result = await executor(fileConfig({ replicasPath: "replicas.0.count" })).scale(
      api,
      4,
      context("job-s"),
    );
    expect(gh.file(CONFIG, "main", PATH)).toBe(kustomization.replace("count: 2", "count: 4"));
    expect(result.replicas).toBe(4);
    expect((await executor().status(api)).desired).toBe(4);
  });

  it("refuses an image the file does not manage before writing anything", async () => {
    const error = await rejection(executor().deploy(api, "ghcr.io/other/api:1", context("job-x")));
    expect(error.code).toBe("usage");
    expect(error.message).toBe(`acme/config/${PATH} manages ghcr.io/acme/api, not ghcr.io/other/api`);
    expect(puts()).toHaveLength(0);
  });
});

describe("a paused deployment", () => {
  /** Someone paused a rollout halfway (`kubectl rollout pause` while bbbbbbb rolled out), as for a canary. */
  async function pauseMidRollout(): Promise<void> {
    await patchDeployment({
      spec: {
        paused: true,
        template: { spec: { containers: [{ name: api.container, image: image("bbbbbbb") }] } },
      },
    });
    while ((await watcher.status(api)).paused !== true) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it("refuses a deploy and a rollback before committing anything to the config repository", async () => {
    await pauseMidRollout();
    sync = startSync();
    const deploy = await rejection(executor().deploy(api, image("3f2c1ab"), context("job-d")));
    expect(deploy).toMatchObject({ code: "conflict", retryable: false });
    expect(deploy.message).toBe(
      "api in production is paused; resume it (kubectl rollout resume) before deploying; nothing was committed to acme/config",
    );
    const oldest = (await executor().history(api)).find((r) => r.image === image("aaaaaaa"));
    const rollback = await rejection(executor().rollback(api, oldest?.revision, context("job-r")));
    expect(rollback).toMatchObject({ code: "conflict", retryable: false });
    expect(rollback.message).toBe(
      "api in production is paused; resume it (kubectl rollout resume) before rolling back; nothing was committed to acme/config",
    );
    expect(puts()).toHaveLength(0);
    expect(await configCommits()).toHaveLength(1);
    expect(gh.file(CONFIG, "main", PATH)).toBe(kustomization);
    expect(sync.applied).toEqual([]);
  });

  it("refuses a deploy to a deployment paused at rest, committing nothing", async () => {
    // Paused with nothing rolling out, the usual way people hold a Deployment.
    await patchDeployment({ spec: { paused: true } });
    sync = startSync();
    const deploy = await rejection(executor().deploy(api, image("3f2c1ab"), context("job-rest")));
    expect(deploy).toMatchObject({ code: "conflict", retryable: false });
    expect(deploy.message).toBe(
      "api in production is paused; resume it (kubectl rollout resume) before deploying; nothing was committed to acme/config",
    );
    expect(puts()).toHaveLength(0);
    expect(gh.file(CONFIG, "main", PATH)).toBe(kustomization);
  });

  it("still resumes a retried job whose commit is in, and stops its wait on the pause", async () => {
    const first = context("job-retry", 2);
    const interrupted = executor().deploy(api, image("3f2c1ab"), first);
    while (first.progress.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    first.controller.abort();
    expect(await rejection(interrupted)).toMatchObject({ code: "timeout", retryable: true });

    await pauseMidRollout();
    sync = startSync();
    const error = await rejection(executor().deploy(api, image("3f2c1ab"), context("job-retry", 3)));
    expect(error.message).toMatch(/^rollout of api in production stopped: the deployment was paused/);
    expect(puts()).toHaveLength(1);
    expect(sync.applied).toEqual(["3f2c1ab"]);
  });

  it("fails retryably, committing nothing, when the Deployment cannot be read before the commit", async () => {
    kube.failNext({ method: "GET", path: /\/deployments\/api$/ }, 503);
    const error = await rejection(executor().deploy(api, image("3f2c1ab"), context("job-blind")));
    expect(error).toMatchObject({ retryable: true });
    expect(error.message).toMatch(
      /; shipbot reads api in production before committing, so nothing was committed to acme\/config and a retry reads it again$/,
    );
    expect(puts()).toHaveLength(0);

    sync = startSync();
    const result = await executor().deploy(api, image("3f2c1ab"), context("job-blind"));
    expect(result).toMatchObject({ image: image("3f2c1ab"), resumed: false });
    expect(puts()).toHaveLength(1);
  });
});
