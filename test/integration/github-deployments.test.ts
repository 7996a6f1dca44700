/**
 * GitHub Deployments as shipbot records them, through the real Octokit against the emulator.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isShipbotError, ShipbotError } from "../../src/core/errors.ts";
import {
  createGitHubClient,
  findActiveDeployment,
  findDeploymentByImage,
  type GitHubClient,
  recordDeployment,
  startDeployment,
} from "../../src/github/index.ts";
import {
  type GitHubEmulator,
  type GitHubEmulatorOptions,
  startGitHubEmulator,
} from "../emulators/github/index.ts";

const REPO = { owner: "acme", repo: "api" };
const FULL = "acme/api";
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const thread = "https://chat.acme.test/archives/C1/p1";

let gh: GitHubEmulator;
let github: GitHubClient;

async function start(options: GitHubEmulatorOptions = {}) {
  gh = await startGitHubEmulator(options);
  gh.createRepo(FULL);
  github = createGitHubClient({
    auth: { kind: "token", token: "ghp_test" },
    baseUrl: gh.url,
    backoffUnitMs: 1,
    writeSpacingMs: 0,
    notifySpacingMs: 0,
    log: quiet,
  });
}

const states = () => gh.deployments(FULL).map((d) => d.statuses.map((s) => s.state));

afterEach(async () => {
  await gh.close();
});

describe("startDeployment", () => {
  beforeEach(() => start());

  it("records a deployment in_progress, then success with the thread link", async () => {
    const sha = gh.commit(FULL, "main", "ship it");
    // A red status must not stop the record: shipbot checks required checks itself.
    gh.setStatus(FULL, sha, "ci/flaky", "failure");
    const d = await startDeployment(github, {
      repo: REPO,
      sha,
      ref: "main",
      environment: "production",
      jobId: "j-1",
      logUrl: thread,
      payload: { image: "ghcr.io/acme/api:abc" },
    });
    expect(d.resumed).toBe(false);
    await d.succeed({ environmentUrl: "https://api.acme.test" });
    await d.fail("ignored: already settled");
    const [recorded] = gh.deployments(FULL);
    expect(recorded).toMatchObject({
      id: d.id,
      ref: sha,
      sha,
      environment: "production",
      payload: { image: "ghcr.io/acme/api:abc", shipbot: { jobId: "j-1", ref: "main" } },
    });
    expect(recorded?.statuses).toEqual([
      { state: "in_progress", log_url: thread },
      { state: "success", log_url: thread, environment_url: "https://api.acme.test" },
    ]);
  });

  it("marks failure with the reason, clipped to GitHub's 140 characters", async () => {
    const sha = gh.commit(FULL, "main", "broken");
    const error = new ShipbotError(
      "upstream",
      `rollout of api in production exceeded its deadline ${"x".repeat(200)}`,
    );
    await expect(
      recordDeployment(
        github,
        { repo: REPO, sha, environment: "staging", jobId: "j-2", logUrl: thread },
        async () => {
          throw error;
        },
      ),
    ).rejects.toBe(error);
    const statuses = gh.deployments(FULL)[0]?.statuses ?? [];
    expect(statuses.map((s) => s.state)).toEqual(["in_progress", "failure"]);
    expect(statuses[1]?.description).toHaveLength(140);
    expect(statuses[1]?.description?.startsWith("rollout of api in production exceeded")).toBe(true);
  });

  it("never leaves the record in_progress: unexpected errors become a chat-safe failure", async () => {
    const sha = gh.commit(FULL, "main", "x");
    await expect(
      recordDeployment(github, { repo: REPO, sha, environment: "staging", jobId: "j-3" }, async () => {
        throw new TypeError("cannot read properties of undefined (secret internals)");
      }),
    ).rejects.toThrow(TypeError);
    const statuses = gh.deployments(FULL)[0]?.statuses ?? [];
    expect(statuses.map((s) => s.state)).toEqual(["in_progress", "failure"]);
    expect(statuses[1]?.description).toBe("something went wrong inside shipbot; the details are in its log");

    const result = await recordDeployment(
      github,
      { repo: REPO, sha, environment: "staging", jobId: "j-4" },
      async () => "done",
    );
    expect(result).toBe("done");
    expect(states()[1]).toEqual(["in_progress", "success"]);
  });

  it("reuses the deployment of a retried job instead of recording a second one", async () => {
    const sha = gh.commit(FULL, "main", "x");
    const first = await startDeployment(github, { repo: REPO, sha, environment: "production", jobId: "j-5" });
    const again = await startDeployment(github, { repo: REPO, sha, environment: "production", jobId: "j-5" });
    expect(again).toMatchObject({ id: first.id, resumed: true });
    await again.succeed();
    expect(gh.deployments(FULL)).toHaveLength(1);
  });

  it("still marks failure when the job's signal ended the work (rollout deadline, shutdown)", async () => {
    const sha = gh.commit(FULL, "main", "slow");
    const job = new AbortController();
    const deadline = new ShipbotError("timeout", "gave up following the rollout after 600s");
    await expect(
      recordDeployment(
        github,
        { repo: REPO, sha, environment: "production", jobId: "j-7", logUrl: thread, signal: job.signal },
        async () => {
          // What the worker's deadline does: the signal fires and the executor stops with it.
          job.abort(deadline);
          throw deadline;
        },
      ),
    ).rejects.toBe(deadline);
    expect(gh.deployments(FULL)[0]?.statuses).toEqual([
      { state: "in_progress", log_url: thread },
      {
        state: "failure",
        log_url: thread,
        description: "gave up following the rollout after 600s",
      },
    ]);
  });

  it("fails cleanly when GitHub is down, after bounded retries", async () => {
    const sha = gh.commit(FULL, "main", "x");
    gh.failNext({}, 503, 100);
    const before = gh.requests().length;
    try {
      await startDeployment(github, { repo: REPO, sha, environment: "production", jobId: "j-6" });
      expect.unreachable();
    } catch (error) {
      expect(isShipbotError(error) && error.code).toBe("upstream");
      expect((error as Error).message).toBe(
        "GitHub is failing (HTTP 503) and kept failing after retries (list deployments of production in acme/api); nothing more was attempted",
      );
    }
    expect(gh.requests().length - before).toBe(4);
    expect(gh.deployments(FULL)).toEqual([]);
  });
});

describe("rollback", () => {
  it("marks the deployments it replaces inactive, even where GitHub keeps production ones active", async () => {
    await start({ autoInactiveProduction: false });
    const v1 = gh.commit(FULL, "main", "v1");
    const v2 = gh.commit(FULL, "main", "v2");
    const d1 = await startDeployment(github, {
      repo: REPO,
      sha: v1,
      environment: "production",
      jobId: "j-a",
      payload: { image: "ghcr.io/acme/api:v1" },
    });
    await d1.succeed();
    const d2 = await startDeployment(github, {
      repo: REPO,
      sha: v2,
      environment: "production",
      jobId: "j-b",
      payload: { image: "ghcr.io/acme/api:v2" },
    });
    await d2.succeed();
    expect(states()).toEqual([
      ["in_progress", "success"],
      ["in_progress", "success"],
    ]);
    expect(await findActiveDeployment(github, REPO, "production")).toMatchObject({ id: d2.id, sha: v2 });

    // The rollback knows its image (from the cluster); the recorded payload gives the commit.
    const previous = await findDeploymentByImage(github, REPO, "production", "ghcr.io/acme/api:v1");
    expect(previous).toMatchObject({ id: d1.id, sha: v1 });
    const back = await startDeployment(github, {
      repo: REPO,
      sha: previous?.sha ?? "",
      environment: "production",
      jobId: "j-c",
      rollback: true,
    });
    await back.succeed();
    expect(states()).toEqual([
      ["in_progress", "success", "inactive"],
      ["in_progress", "success", "inactive"],
      ["in_progress", "success"],
    ]);
    expect(await findActiveDeployment(github, REPO, "production")).toMatchObject({ id: back.id, sha: v1 });
  });
});
