import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import { createGitHubClient } from "../../src/github/index.ts";
import { type GitHubEmulator, startGitHubEmulator } from "../emulators/github/index.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";
import { chatCommand, demoUser, sre } from "../helpers/example-config.ts";
import { startTestRuntime, type TestRuntime, testConfig } from "../helpers/test-runtime.ts";

let github: GitHubEmulator;
let kube: KubeEmulator;
let dir: string;
let t: TestRuntime;
let head: string;

beforeAll(async () => {
  github = await startGitHubEmulator();
  github.createRepo("acme/api", { "README.md": "api\n" });
  head = github.commit("acme/api", "main", "Add the health endpoint", {
    author: { name: "Dev One", email: "dev1@example.com", login: "dev-1" },
  });
  kube = await startKubeEmulator({
    deployments: [
      { namespace: "staging", name: "api", image: "ghcr.io/acme/api:v1", replicas: 2 },
      { namespace: "production", name: "api", image: "ghcr.io/acme/api:v1", replicas: 2 },
      { namespace: "production", name: "web", image: "ghcr.io/acme/web:v0.9.0", replicas: 2 },
    ],
    stepMs: 20,
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-github-e2e-"));
  const kubeconfigPath = await kube.writeKubeconfig(join(dir, "kubeconfig"));
  const base = testConfig();
  const api = base.services.api;
  const web = base.services.web;
  if (!api || !web) throw new Error("example config has no api or web");
  const production = base.environments.production;
  if (!production?.approval) throw new Error("example config has no production approval");
  const config = {
    ...base,
    environments: {
      ...base.environments,
      production: { ...production, approval: { ...production.approval, allowForce: true } },
    },
    services: {
      ...base.services,
      api: {
        ...api,
        github: { repo: "acme/api", imageTag: "{sha7}", requiredChecks: ["ci/build"], deployments: true },
      },
      // Images tagged by git tag: the version must stay a tag through the approval.
      web: {
        ...web,
        github: { repo: "acme/web", imageTag: "{tag}", requiredChecks: [], deployments: false },
      },
    },
  };
  t = await startTestRuntime({
    executor: createKubernetesExecutor({ kubeConfig: loadKubeConfig({ kubeconfigPath }), pollMs: 20 }),
    config,
    github: createGitHubClient({
      auth: { kind: "token", token: "ghp_test" },
      baseUrl: github.url,
      writeSpacingMs: 0,
      notifySpacingMs: 0,
    }),
  });
});

afterAll(async () => {
  await t?.close();
  await kube?.close();
  await github?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("deploying a git ref", () => {
  it("refuses a commit whose required check is red, naming the check, and changes nothing", async () => {
    github.setStatus("acme/api", head, "ci/build", "failure", "https://ci.example.com/build/1");
    const reply = await t.runtime.handle(chatCommand("/deploy api staging main", demoUser));
    const failed = await t.waitForPhase(reply.jobIds[0] as string, ["failed"]);
    expect(failed.text).toContain("ci/build");
    expect(failed.text).toContain("https://ci.example.com/build/1");
    expect(kube.writes("staging", "api")).toBe(0);
    expect(github.deployments("acme/api")).toEqual([]);
  });

  it("deploys the commit the branch names once checks are green, and records a GitHub deployment", async () => {
    github.setStatus("acme/api", head, "ci/build", "success");
    const reply = await t.runtime.handle(chatCommand("/deploy api staging main", demoUser));
    const done = await t.waitForPhase(reply.jobIds[0] as string, ["succeeded"]);
    const image = `ghcr.io/acme/api:${head.slice(0, 7)}`;
    expect(done.text).toMatch(new RegExp(`^Deployed ${image.replaceAll(".", "\\.")} in \\d+s$`));
    expect(kube.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(image);
    const [deployment] = github.deployments("acme/api");
    expect(deployment).toMatchObject({ sha: head, environment: "staging" });
    expect(deployment?.statuses.map((s) => s.state)).toEqual(["in_progress", "success"]);
  });

  it("deploys the commit that was approved, even if the branch moved on since", async () => {
    const reply = await t.runtime.handle(chatCommand("/deploy api production main", sre(1)));
    const jobId = reply.jobIds[0] as string;
    const pending = await t.waitForPhase(jobId, ["pending-approval"]);
    expect(pending.text).toContain(`commit ${head.slice(0, 7)}`);
    // Nothing of this repo was deployed to production through GitHub yet.
    expect(pending.text).toContain("first recorded deploy here");
    const later = github.commit("acme/api", "main", "Something nobody approved");
    github.setStatus("acme/api", later, "ci/build", "success");
    for (const n of [2, 3]) {
      await t.runtime.handleAction({
        id: `c${n}`,
        user: sre(n),
        conversation: { platform: "shell", channel: "test" },
        action: "approve",
        value: jobId,
        receivedAt: Date.now(),
      });
    }
    await t.waitForPhase(jobId, ["succeeded"]);
    expect(kube.deployment("production", "api").spec.template.spec.containers[0].image).toBe(
      `ghcr.io/acme/api:${head.slice(0, 7)}`,
    );
  });

  it("deploys a tag-tagged service's approved tag, and stops if the tag moved after the approval", async () => {
    github.createRepo("acme/web", { "README.md": "web\n" });
    const released = github.commit("acme/web", "main", "Release 1.0.0");
    github.tag("acme/web", "v1.0.0", released);
    const approveAll = async (jobId: string) => {
      for (const n of [2, 3]) {
        await t.runtime.handleAction({
          id: `w${jobId}${n}`,
          user: sre(n),
          conversation: { platform: "shell", channel: "test" },
          action: "approve",
          value: jobId,
          receivedAt: Date.now(),
        });
      }
    };
    const first = (await t.runtime.handle(chatCommand("/deploy web production v1.0.0", sre(1))))
      .jobIds[0] as string;
    expect((await t.waitForPhase(first, ["pending-approval"])).text).toContain(
      `commit ${released.slice(0, 7)}`,
    );
    await approveAll(first);
    await t.waitForPhase(first, ["succeeded"]);
    expect(kube.deployment("production", "web").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/web:v1.0.0",
    );

    // Approved for one commit; the tag is moved to another before the job runs.
    const second = (await t.runtime.handle(chatCommand("/deploy web production v1.0.0", sre(1))))
      .jobIds[0] as string;
    await t.waitForPhase(second, ["pending-approval"]);
    github.tag("acme/web", "v1.0.0", github.commit("acme/web", "main", "Nobody approved this"));
    await approveAll(second);
    const stopped = await t.waitForPhase(second, ["failed"]);
    expect(stopped.text).toContain("`v1.0.0` moved since it was approved");
    expect(kube.deployment("production", "web").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/web:v1.0.0",
    );
  });

  it("goes past a red check only with --force, where policy allows it, and only after approval", async () => {
    const red = github.commit("acme/api", "main", "Hotfix with a flaky test");
    github.setStatus("acme/api", red, "ci/build", "failure", "https://ci.example.com/build/9");
    const staging = await t.runtime.handle(chatCommand("/deploy api staging main --force", demoUser));
    expect(staging.error?.message).toBe(
      "--force is not allowed in staging: its approval policy does not permit deploying past failing checks",
    );
    const reply = await t.runtime.handle(chatCommand("/deploy api production main --force", sre(1)));
    const jobId = reply.jobIds[0] as string;
    const pending = await t.waitForPhase(jobId, ["pending-approval"]);
    // Production runs the approved commit from the test before; this one adds two commits on top.
    expect(pending.text).toContain(`· 2 commits since ${head.slice(0, 7)}`);
    for (const n of [2, 3]) {
      await t.runtime.handleAction({
        id: `f${n}`,
        user: sre(n),
        conversation: { platform: "shell", channel: "test" },
        action: "approve",
        value: jobId,
        receivedAt: Date.now(),
      });
    }
    await t.waitForPhase(jobId, ["succeeded"]);
    expect(kube.deployment("production", "api").spec.template.spec.containers[0].image).toBe(
      `ghcr.io/acme/api:${red.slice(0, 7)}`,
    );
  });

  it("records a rollback as a deployment of the earlier commit and marks the others inactive", async () => {
    const before = github.deployments("acme/api").filter((d) => d.environment === "staging").length;
    const reply = await t.runtime.handle(chatCommand("/rollback api staging", demoUser));
    const done = await t.waitForPhase(reply.jobIds[0] as string, ["succeeded"]);
    expect(done.text).toMatch(/^Rolled back to ghcr\.io\/acme\/api:v1 /);
    // v1 was never deployed through GitHub: nothing to record, and the rollback still succeeded.
    expect(github.deployments("acme/api").filter((d) => d.environment === "staging").length).toBe(before);
  });

  it("answers an unknown ref with the repository it looked in", async () => {
    const reply = await t.runtime.handle(chatCommand("/deploy api staging no-such-branch", demoUser));
    const failed = await t.waitForPhase(reply.jobIds[0] as string, ["failed"]);
    expect(failed.text).toBe("Failed: no branch, tag or commit `no-such-branch` in acme/api");
  });
});
