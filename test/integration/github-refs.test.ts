/**
 * Ref resolution, required checks and commit comparison through the real Octokit against the emulator.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isShipbotError, type ShipbotError } from "../../src/core/errors.ts";
import {
  checkRequired,
  compareCommits,
  createGitHubClient,
  type GitHubClient,
  resolveRef,
} from "../../src/github/index.ts";
import { type GitHubEmulator, startGitHubEmulator } from "../emulators/github/index.ts";

const REPO = { owner: "acme", repo: "api" };
const FULL = "acme/api";
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let gh: GitHubEmulator;
let github: GitHubClient;

async function rejection(promise: Promise<unknown>): Promise<ShipbotError> {
  try {
    await promise;
  } catch (error) {
    if (isShipbotError(error)) return error;
    throw error;
  }
  throw new Error("expected a failure");
}

beforeEach(async () => {
  gh = await startGitHubEmulator();
  gh.createRepo(FULL);
  github = createGitHubClient({
    auth: { kind: "token", token: "ghp_test" },
    baseUrl: gh.url,
    backoffUnitMs: 1,
    writeSpacingMs: 0,
    notifySpacingMs: 0,
    log: quiet,
  });
});

afterEach(async () => {
  await gh.close();
});

describe("resolveRef", () => {
  it("resolves a branch, a tag, a full and a short sha to the same commit", async () => {
    const sha = gh.commit(FULL, "main", "feat: faster checkout\n\nCo-authored-by: Dev Two <Dev2@acme.test>", {
      author: { name: "Dev One", email: "dev1@acme.test", login: "dev-1" },
      date: "2024-05-01T10:00:00Z",
    });
    gh.tag(FULL, "v1.42.0", sha);
    const expected = {
      sha,
      shortSha: sha.slice(0, 7),
      committedAt: "2024-05-01T10:00:00Z",
      title: "feat: faster checkout",
      authors: [
        { name: "Dev One", email: "dev1@acme.test", login: "dev-1" },
        { name: "Dev Two", email: "dev2@acme.test" },
      ],
    };
    expect(await resolveRef(github, REPO, "main")).toEqual({
      ...expected,
      ref: "main",
      kind: "branch",
      imageTag: sha.slice(0, 7),
    });
    expect(await resolveRef(github, REPO, "v1.42.0", { imageTagTemplate: "{tag}" })).toMatchObject({
      kind: "tag",
      sha,
      imageTag: "v1.42.0",
    });
    expect(await resolveRef(github, REPO, sha)).toMatchObject({ kind: "sha", sha });
    expect(await resolveRef(github, REPO, sha.slice(0, 7), { imageTagTemplate: "{sha}" })).toMatchObject({
      kind: "sha",
      sha,
      imageTag: sha,
    });
    expect(await resolveRef(github, REPO, "refs/heads/main")).toMatchObject({ kind: "branch", sha });
  });

  it("names an unknown ref and the repository", async () => {
    const error = await rejection(resolveRef(github, REPO, "x"));
    expect(error.code).toBe("not_found");
    expect(error.message).toBe("no branch, tag or commit `x` in acme/api");
    expect(error.retryable).toBe(false);
  });

  it("refuses hostile refs without sending a single request", async () => {
    for (const ref of [
      "../../etc/passwd",
      "main~1",
      "-x",
      "a b",
      "x\u0007",
      "other:main",
      "o/r@main",
      "m@{1}",
    ]) {
      const error = await rejection(resolveRef(github, REPO, ref));
      expect(error.code).toBe("usage");
    }
    await rejection(resolveRef(github, REPO, "y".repeat(5000)));
    expect(gh.requests()).toEqual([]);
  });

  it("refuses {tag} for a branch after resolving it", async () => {
    const error = await rejection(resolveRef(github, REPO, "main", { imageTagTemplate: "{tag}" }));
    expect(error.code).toBe("usage");
    expect(error.message).toContain("deploy a tag");
  });
});

describe("checkRequired", () => {
  it("passes when every listed status and check run is green, ignoring unlisted ones", async () => {
    const sha = gh.commit(FULL, "main", "green");
    gh.setStatus(FULL, sha, "ci/build", "pending");
    gh.setStatus(FULL, sha, "ci/build", "success", "https://ci.example/1");
    gh.setCheckRun(FULL, sha, "e2e", "completed", "success");
    gh.setCheckRun(FULL, sha, "lint", "completed", "skipped");
    gh.setStatus(FULL, sha, "optional", "failure");
    const report = await checkRequired(github, REPO, sha, { required: ["ci/build", "e2e", "lint"] });
    expect(report).toMatchObject({ ok: true, forced: false });
    expect(report.checks.map((c) => [c.name, c.state, c.source])).toEqual([
      ["ci/build", "success", "status"],
      ["e2e", "success", "check"],
      ["lint", "success", "check"],
    ]);
    const before = gh.requests().length;
    expect((await checkRequired(github, REPO, sha, { required: [] })).ok).toBe(true);
    expect(gh.requests()).toHaveLength(before);
  });

  it("refuses red checks, naming each with its link", async () => {
    const sha = gh.commit(FULL, "main", "red");
    gh.setStatus(FULL, sha, "ci/build", "failure", "https://ci.example/builds/9");
    gh.setCheckRun(FULL, sha, "e2e", "completed", "timed_out");
    gh.setCheckRun(FULL, sha, "unit", "in_progress");
    const error = await rejection(
      checkRequired(github, REPO, sha, { required: ["ci/build", "e2e", "unit"] }),
    );
    expect(error.code).toBe("conflict");
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      `required checks are not green on ${sha.slice(0, 7)} in acme/api: ci/build failed (https://ci.example/builds/9); ` +
        `e2e failed (${gh.url}/acme/api/runs/${runId(error.message, "e2e")}); ` +
        `unit is pending (${gh.url}/acme/api/runs/${runId(error.message, "unit")})`,
    );
  });

  it("refuses pending and missing checks as retryable, and lets `force` through with a report", async () => {
    const sha = gh.commit(FULL, "main", "pending");
    gh.setStatus(FULL, sha, "ci/build", "pending");
    const error = await rejection(checkRequired(github, REPO, sha, { required: ["ci/build", "security"] }));
    expect(error.retryable).toBe(true);
    expect(error.message).toBe(
      `required checks are not green on ${sha.slice(0, 7)} in acme/api: ci/build is pending; security has not reported`,
    );
    const forced = await checkRequired(github, REPO, sha, { required: ["ci/build"], force: true });
    expect(forced).toMatchObject({
      ok: false,
      forced: true,
      checks: [{ name: "ci/build", state: "pending" }],
    });

    gh.setStatus(FULL, sha, "ci/build", "success");
    gh.setStatus(FULL, sha, "security", "success");
    expect((await checkRequired(github, REPO, sha, { required: ["ci/build", "security"] })).ok).toBe(true);
  });
});

function runId(message: string, name: string): string {
  return new RegExp(`${name} (?:failed|is pending) \\([^)]*/runs/(\\d+)\\)`).exec(message)?.[1] ?? "?";
}

describe("compareCommits", () => {
  it("lists the commits, authors and first lines between the deployed sha and the new one", async () => {
    const deployed = gh.commit(FULL, "main", "deployed");
    gh.commit(FULL, "main", "fix: a\n\nbody", { author: { name: "A", email: "a@acme.test", login: "a" } });
    gh.commit(FULL, "main", "feat: b", { author: { name: "B", email: "b@acme.test", login: "b" } });
    const head = gh.commit(FULL, "main", "feat: c\n\nCo-authored-by: A <a@acme.test>", {
      author: { name: "B", email: "b@acme.test", login: "b" },
    });
    const preview = await compareCommits(github, REPO, deployed, head, { limit: 2 });
    expect(preview).toMatchObject({ status: "ahead", aheadBy: 3, behindBy: 0, truncated: true });
    expect(preview.commits.map((c) => c.title)).toEqual(["feat: b", "feat: c"]);
    expect(preview.authors).toEqual([
      { name: "A", email: "a@acme.test", login: "a" },
      { name: "B", email: "b@acme.test", login: "b" },
    ]);
    const back = await compareCommits(github, REPO, head, deployed);
    expect(back).toMatchObject({ status: "behind", aheadBy: 0, behindBy: 3, commits: [] });
  });
});
