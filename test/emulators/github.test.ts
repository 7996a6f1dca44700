import { createHash } from "node:crypto";
import { Octokit } from "@octokit/rest";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type GitHubEmulator, startGitHubEmulator } from "./github/index.ts";

const REPO = { owner: "acme", repo: "api" };
const FULL = "acme/api";

// Octokit surfaces HTTP errors as RequestError with `status` and the response attached.
interface HttpError {
  status: number;
  message: string;
  response?: { data: unknown; headers: Record<string, string | undefined> };
}

async function httpError(promise: Promise<unknown>): Promise<HttpError> {
  try {
    await promise;
  } catch (err) {
    return err as HttpError;
  }
  throw new Error("expected the request to fail");
}

function gitBlobSha(text: string): string {
  const bytes = Buffer.from(text);
  return createHash("sha1")
    .update(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes]))
    .digest("hex");
}

// Octokit logs every failed request; the failures here are the point of the tests.
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let gh: GitHubEmulator;
let octokit: Octokit;

beforeEach(async () => {
  gh = await startGitHubEmulator();
  octokit = new Octokit({ baseUrl: gh.url, auth: "ghp_test", log: quiet });
  gh.createRepo(FULL, { "README.md": "# api\n", "deploy/values.yaml": "image: ghcr.io/acme/api:0000000\n" });
});

afterEach(async () => {
  await gh.close();
});

describe("github emulator: refs and commits", () => {
  it("resolves branch, tag, full and short sha to the same commit with its author", async () => {
    const sha = gh.commit(FULL, "main", "feat: faster checkout", {
      author: { name: "Dev One", email: "dev1@acme.test", login: "dev-1" },
      files: { "src/app.ts": "export const x = 1;\n" },
    });
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    gh.tag(FULL, "v1.42.0", sha);

    for (const ref of ["main", "v1.42.0", sha, sha.slice(0, 7), "heads/main", "refs/tags/v1.42.0"]) {
      const { data } = await octokit.rest.repos.getCommit({ ...REPO, ref });
      expect(data.sha).toBe(sha);
      expect(data.commit.author?.name).toBe("Dev One");
      expect(data.commit.author?.email).toBe("dev1@acme.test");
      expect(data.author?.login).toBe("dev-1");
      expect(data.commit.message).toBe("feat: faster checkout");
    }
    const { data: commit } = await octokit.rest.repos.getCommit({ ...REPO, ref: sha });
    expect(commit.files?.map((f) => [f.filename, f.status])).toEqual([["src/app.ts", "added"]]);

    const { data: branchRef } = await octokit.rest.git.getRef({ ...REPO, ref: "heads/main" });
    expect(branchRef).toMatchObject({ ref: "refs/heads/main", object: { sha, type: "commit" } });
    const { data: tagRef } = await octokit.rest.git.getRef({ ...REPO, ref: "tags/v1.42.0" });
    expect(tagRef.object.sha).toBe(sha);
    const { data: branch } = await octokit.rest.repos.getBranch({ ...REPO, branch: "main" });
    expect(branch.commit.sha).toBe(sha);
    const { data: repo } = await octokit.rest.repos.get(REPO);
    expect(repo).toMatchObject({ full_name: FULL, default_branch: "main" });
  });

  it("answers an unknown ref with 422 'No commit found for SHA', and unknown branches/refs with 404", async () => {
    const err = await httpError(octokit.rest.repos.getCommit({ ...REPO, ref: "nope" }));
    expect(err.status).toBe(422);
    expect(err.message).toContain("No commit found for SHA: nope");
    expect(err.response?.data).toMatchObject({ message: "No commit found for SHA: nope" });
    expect((await httpError(octokit.rest.repos.getBranch({ ...REPO, branch: "nope" }))).status).toBe(404);
    expect((await httpError(octokit.rest.git.getRef({ ...REPO, ref: "heads/nope" }))).status).toBe(404);
    const missingRepo = await httpError(octokit.rest.repos.get({ owner: "acme", repo: "ghost" }));
    expect(missingRepo.status).toBe(404);
    expect(missingRepo.response?.data).toMatchObject({ message: "Not Found" });
  });
});

describe("github emulator: statuses and checks", () => {
  it("reports the combined status (latest per context) and check runs", async () => {
    const sha = gh.commit(FULL, "main", "ci me");
    const { data: empty } = await octokit.rest.repos.getCombinedStatusForRef({ ...REPO, ref: sha });
    expect(empty).toMatchObject({ state: "pending", total_count: 0, sha });

    gh.setStatus(FULL, sha, "ci/build", "pending");
    gh.setStatus(FULL, sha, "ci/build", "success", "https://ci.example/1");
    await octokit.rest.repos.createCommitStatus({ ...REPO, sha, state: "success", context: "ci/lint" });
    const { data: green } = await octokit.rest.repos.getCombinedStatusForRef({ ...REPO, ref: "main" });
    expect(green.state).toBe("success");
    expect(green.total_count).toBe(2);
    expect(green.statuses.find((s) => s.context === "ci/build")?.target_url).toBe("https://ci.example/1");

    gh.setStatus(FULL, sha, "ci/lint", "failure");
    const { data: red } = await octokit.rest.repos.getCombinedStatusForRef({ ...REPO, ref: sha.slice(0, 8) });
    expect(red.state).toBe("failure");
    const { data: all } = await octokit.rest.repos.listCommitStatusesForRef({ ...REPO, ref: sha });
    expect(all.map((s) => `${s.context}:${s.state}`)).toEqual([
      "ci/lint:failure",
      "ci/lint:success",
      "ci/build:success",
      "ci/build:pending",
    ]);

    gh.setCheckRun(FULL, sha, "test", "in_progress");
    gh.setCheckRun(FULL, sha, "test", "completed", "success");
    gh.setCheckRun(FULL, sha, "e2e", "completed", "failure");
    const { data: checks } = await octokit.rest.checks.listForRef({ ...REPO, ref: sha });
    expect(checks.total_count).toBe(2);
    expect(Object.fromEntries(checks.check_runs.map((r) => [r.name, [r.status, r.conclusion]]))).toEqual({
      test: ["completed", "success"],
      e2e: ["completed", "failure"],
    });
    const bad = await httpError(
      octokit.rest.repos.createCommitStatus({ ...REPO, sha: "f".repeat(40), state: "success" }),
    );
    expect(bad.status).toBe(422);
    expect(bad.message).toContain("No commit found for SHA");
  });

  it("compares two commits", async () => {
    const base = gh.commit(FULL, "main", "one");
    const c2 = gh.commit(FULL, "main", "two", { files: { "a.txt": "a\n" } });
    const c3 = gh.commit(FULL, "main", "three", { files: { "a.txt": "a\nb\n" } });
    const { data } = await octokit.rest.repos.compareCommitsWithBasehead({
      ...REPO,
      basehead: `${base}...${c3}`,
    });
    expect(data).toMatchObject({ status: "ahead", ahead_by: 2, behind_by: 0, total_commits: 2 });
    expect(data.commits.map((c) => c.sha)).toEqual([c2, c3]);
    expect(data.merge_base_commit.sha).toBe(base);
    expect(data.files?.map((f) => [f.filename, f.status, f.additions])).toEqual([["a.txt", "added", 2]]);

    const { data: back } = await octokit.rest.repos.compareCommitsWithBasehead({
      ...REPO,
      basehead: `${c3}...${base}`,
    });
    expect(back).toMatchObject({ status: "behind", ahead_by: 0, behind_by: 2 });

    gh.commit(FULL, "hotfix", "fix", { files: { "b.txt": "b\n" } });
    const c4 = gh.commit(FULL, "main", "four");
    const { data: diverged } = await octokit.rest.repos.compareCommits({
      ...REPO,
      base: "hotfix",
      head: "main",
    });
    expect(diverged).toMatchObject({ status: "diverged", ahead_by: 1, behind_by: 1 });
    expect(diverged.commits.map((c) => c.sha)).toEqual([c4]);
    expect(diverged.merge_base_commit.sha).toBe(c3);
    const { data: same } = await octokit.rest.repos.compareCommits({ ...REPO, base: "main", head: c4 });
    expect(same.status).toBe("identical");
  });
});

describe("github emulator: deployments", () => {
  it("creates a deployment, walks it to success and inactivates the previous one", async () => {
    const first = gh.commit(FULL, "main", "first");
    gh.setStatus(FULL, first, "ci/build", "success");
    const { data: d1, status } = await octokit.rest.repos.createDeployment({
      ...REPO,
      ref: "main",
      environment: "production",
      payload: { image: "ghcr.io/acme/api:abc", jobId: "j1" },
      auto_merge: false,
    });
    expect(status).toBe(201);
    if (!("id" in d1)) throw new Error("expected a deployment");
    expect(d1).toMatchObject({
      sha: first,
      ref: "main",
      environment: "production",
      production_environment: true,
    });
    expect(d1.payload).toEqual({ image: "ghcr.io/acme/api:abc", jobId: "j1" });
    await octokit.rest.repos.createDeploymentStatus({ ...REPO, deployment_id: d1.id, state: "in_progress" });
    await octokit.rest.repos.createDeploymentStatus({
      ...REPO,
      deployment_id: d1.id,
      state: "success",
      environment_url: "https://api.acme.test",
      log_url: "https://chat.acme.test/t/1",
    });

    const second = gh.commit(FULL, "main", "second");
    gh.setStatus(FULL, second, "ci/build", "success");
    const { data: d2 } = await octokit.rest.repos.createDeployment({
      ...REPO,
      ref: second,
      environment: "production",
    });
    if (!("id" in d2)) throw new Error("expected a deployment");
    await octokit.rest.repos.createDeploymentStatus({ ...REPO, deployment_id: d2.id, state: "in_progress" });
    const { data: done } = await octokit.rest.repos.createDeploymentStatus({
      ...REPO,
      deployment_id: d2.id,
      state: "success",
      log_url: "https://chat.acme.test/t/2",
    });
    expect(done).toMatchObject({
      state: "success",
      log_url: "https://chat.acme.test/t/2",
      environment: "production",
    });

    const { data: listed } = await octokit.rest.repos.listDeployments({ ...REPO, environment: "production" });
    expect(listed.map((d) => d.id)).toEqual([d2.id, d1.id]);
    const { data: bySha } = await octokit.rest.repos.listDeployments({ ...REPO, sha: first });
    expect(bySha.map((d) => d.id)).toEqual([d1.id]);
    const { data: firstStatuses } = await octokit.rest.repos.listDeploymentStatuses({
      ...REPO,
      deployment_id: d1.id,
    });
    expect(firstStatuses.map((s) => s.state)).toEqual(["inactive", "success", "in_progress"]);

    expect(gh.deployments(FULL).map((d) => [d.id, d.statuses.map((s) => s.state)])).toEqual([
      [d1.id, ["in_progress", "success", "inactive"]],
      [d2.id, ["in_progress", "success"]],
    ]);
    expect(gh.deployments(FULL)[0]?.statuses[1]).toMatchObject({ environment_url: "https://api.acme.test" });
  });

  it("keeps earlier deployments active when auto_inactive is false or the environment differs", async () => {
    const { data: staging } = await octokit.rest.repos.createDeployment({
      ...REPO,
      ref: "main",
      environment: "staging",
    });
    const { data: prod } = await octokit.rest.repos.createDeployment({
      ...REPO,
      ref: "main",
      environment: "production",
    });
    const { data: again } = await octokit.rest.repos.createDeployment({
      ...REPO,
      ref: "main",
      environment: "staging",
    });
    if (!("id" in staging) || !("id" in prod) || !("id" in again)) throw new Error("expected deployments");
    for (const id of [staging.id, prod.id]) {
      await octokit.rest.repos.createDeploymentStatus({ ...REPO, deployment_id: id, state: "success" });
    }
    await octokit.rest.repos.createDeploymentStatus({
      ...REPO,
      deployment_id: again.id,
      state: "success",
      auto_inactive: false,
    });
    expect(gh.deployments(FULL).map((d) => d.statuses.map((s) => s.state))).toEqual([
      ["success"],
      ["success"],
      ["success"],
    ]);
  });

  it("can follow the strict reading that leaves production deployments active", async () => {
    const strict = await startGitHubEmulator({ autoInactiveProduction: false });
    try {
      strict.createRepo(FULL);
      const client = new Octokit({ baseUrl: strict.url, auth: "ghp_test", log: quiet });
      for (const environment of ["production", "production", "qa", "qa"]) {
        const { data } = await client.rest.repos.createDeployment({ ...REPO, ref: "main", environment });
        if (!("id" in data)) throw new Error("expected a deployment");
        await client.rest.repos.createDeploymentStatus({ ...REPO, deployment_id: data.id, state: "success" });
      }
      expect(strict.deployments(FULL).map((d) => d.statuses.map((s) => s.state))).toEqual([
        ["success"],
        ["success"],
        ["success", "inactive"],
        ["success"],
      ]);
    } finally {
      await strict.close();
    }
  });

  it("refuses with 409 when required contexts are red, and skips the check with required_contexts: []", async () => {
    const sha = gh.commit(FULL, "main", "red build");
    gh.setStatus(FULL, sha, "ci/build", "failure");
    gh.setStatus(FULL, sha, "ci/lint", "success");
    const err = await httpError(
      octokit.rest.repos.createDeployment({ ...REPO, ref: "main", environment: "staging" }),
    );
    expect(err.status).toBe(409);
    expect(err.message).toContain("Conflict: Commit status checks failed for main.");
    expect(err.response?.data).toMatchObject({
      errors: [
        {
          resource: "Deployment",
          field: "required_contexts",
          code: "invalid",
          contexts: [
            { context: "ci/build", state: "failure" },
            { context: "ci/lint", state: "success" },
          ],
        },
      ],
    });

    // Only the listed contexts matter; a listed context nobody reported also blocks.
    await octokit.rest.repos.createDeployment({ ...REPO, ref: "main", required_contexts: ["ci/lint"] });
    const missing = await httpError(
      octokit.rest.repos.createDeployment({
        ...REPO,
        ref: "main",
        required_contexts: ["ci/lint", "security"],
      }),
    );
    expect(missing.status).toBe(409);
    gh.setCheckRun(FULL, sha, "e2e", "in_progress");
    const pendingCheck = await httpError(
      octokit.rest.repos.createDeployment({ ...REPO, ref: "main", required_contexts: ["e2e"] }),
    );
    expect(pendingCheck.status).toBe(409);

    const { status } = await octokit.rest.repos.createDeployment({
      ...REPO,
      ref: "main",
      required_contexts: [],
    });
    expect(status).toBe(201);
    expect(gh.deployments(FULL)).toHaveLength(2);
  });

  it("applies auto_merge: an old sha conflicts, a stale branch is merged with 202", async () => {
    const old = gh.commit(FULL, "main", "old");
    gh.commit(FULL, "main", "new");
    const rollback = await httpError(
      octokit.rest.repos.createDeployment({ ...REPO, ref: old, required_contexts: [] }),
    );
    expect(rollback.status).toBe(409);
    expect(rollback.message).toContain(`Conflict merging main into ${old}.`);
    const { status } = await octokit.rest.repos.createDeployment({
      ...REPO,
      ref: old,
      required_contexts: [],
      auto_merge: false,
    });
    expect(status).toBe(201);

    gh.commit(FULL, "feature", "feature work", { files: { "f.txt": "f\n" } });
    gh.commit(FULL, "main", "newer main");
    const merged = await octokit.rest.repos.createDeployment({
      ...REPO,
      ref: "feature",
      required_contexts: [],
    });
    expect(merged.status).toBe(202);
    expect(merged.data).toMatchObject({ message: "Auto-merged main into feature on deployment." });
    expect(gh.file(FULL, "feature", "f.txt")).toBe("f\n");
  });
});

describe("github emulator: contents, pulls, refs", () => {
  it("reads a file and updates it with the right blob sha; a stale sha gets 409", async () => {
    const { data } = await octokit.rest.repos.getContent({
      ...REPO,
      path: "deploy/values.yaml",
      ref: "main",
    });
    if (Array.isArray(data) || data.type !== "file") throw new Error("expected a file");
    const text = "image: ghcr.io/acme/api:0000000\n";
    expect(Buffer.from(data.content, "base64").toString()).toBe(text);
    expect(data.sha).toBe(gitBlobSha(text));

    const next = "image: ghcr.io/acme/api:3f2c1ab\n";
    const { data: put, status } = await octokit.rest.repos.createOrUpdateFileContents({
      ...REPO,
      path: "deploy/values.yaml",
      message: "deploy api 3f2c1ab",
      content: Buffer.from(next).toString("base64"),
      sha: data.sha,
      branch: "main",
    });
    expect(status).toBe(200);
    expect(put.content?.sha).toBe(gitBlobSha(next));
    expect(gh.file(FULL, "main", "deploy/values.yaml")).toBe(next);
    const { data: head } = await octokit.rest.repos.getCommit({ ...REPO, ref: "main" });
    expect(head.sha).toBe(put.commit.sha);
    expect(head.commit.message).toBe("deploy api 3f2c1ab");

    const stale = await httpError(
      octokit.rest.repos.createOrUpdateFileContents({
        ...REPO,
        path: "deploy/values.yaml",
        message: "racing writer",
        content: Buffer.from("image: x\n").toString("base64"),
        sha: data.sha,
      }),
    );
    expect(stale.status).toBe(409);
    expect(stale.message).toContain(`deploy/values.yaml does not match ${data.sha}`);
    const noSha = await httpError(
      octokit.rest.repos.createOrUpdateFileContents({
        ...REPO,
        path: "deploy/values.yaml",
        message: "blind write",
        content: Buffer.from("image: x\n").toString("base64"),
      }),
    );
    expect(noSha.status).toBe(422);
    expect(gh.file(FULL, "main", "deploy/values.yaml")).toBe(next);

    const created = await octokit.rest.repos.createOrUpdateFileContents({
      ...REPO,
      path: "deploy/new.yaml",
      message: "add",
      content: Buffer.from("a: 1\n").toString("base64"),
    });
    expect(created.status).toBe(201);
    expect((await httpError(octokit.rest.repos.getContent({ ...REPO, path: "nope.txt" }))).status).toBe(404);
  });

  it("creates a branch and a pull request and merges it", async () => {
    const { data: main } = await octokit.rest.git.getRef({ ...REPO, ref: "heads/main" });
    await octokit.rest.git.createRef({ ...REPO, ref: "refs/heads/shipbot/deploy-1", sha: main.object.sha });
    const dup = await httpError(
      octokit.rest.git.createRef({ ...REPO, ref: "refs/heads/shipbot/deploy-1", sha: main.object.sha }),
    );
    expect(dup.status).toBe(422);

    const { data: file } = await octokit.rest.repos.getContent({ ...REPO, path: "deploy/values.yaml" });
    if (Array.isArray(file)) throw new Error("expected a file");
    await octokit.rest.repos.createOrUpdateFileContents({
      ...REPO,
      path: "deploy/values.yaml",
      message: "bump",
      content: Buffer.from("image: ghcr.io/acme/api:3f2c1ab\n").toString("base64"),
      sha: file.sha,
      branch: "shipbot/deploy-1",
    });
    const { data: pr } = await octokit.rest.pulls.create({
      ...REPO,
      head: "shipbot/deploy-1",
      base: "main",
      title: "Deploy api 3f2c1ab",
    });
    expect(pr).toMatchObject({
      number: 1,
      state: "open",
      head: { ref: "shipbot/deploy-1" },
      base: { ref: "main" },
    });
    const { data: fetched } = await octokit.rest.pulls.get({ ...REPO, pull_number: pr.number });
    expect(fetched.mergeable).toBe(true);

    const wrongHead = await httpError(
      octokit.rest.pulls.merge({ ...REPO, pull_number: pr.number, sha: main.object.sha }),
    );
    expect(wrongHead.status).toBe(409);
    const { data: merged } = await octokit.rest.pulls.merge({
      ...REPO,
      pull_number: pr.number,
      merge_method: "squash",
    });
    expect(merged).toMatchObject({ merged: true, message: "Pull Request successfully merged" });
    expect(gh.file(FULL, "main", "deploy/values.yaml")).toBe("image: ghcr.io/acme/api:3f2c1ab\n");
    expect(gh.pulls(FULL)).toEqual([
      { number: 1, head: "shipbot/deploy-1", base: "main", state: "closed", merged: true },
    ]);

    const again = await httpError(octokit.rest.pulls.merge({ ...REPO, pull_number: pr.number }));
    expect(again.status).toBe(405);
    expect(again.message).toContain("Pull Request is not mergeable");
  });

  it("answers 405 for a pull request with conflicting changes", async () => {
    gh.commit(FULL, "topic", "topic edit", { files: { "README.md": "# topic\n" } });
    gh.commit(FULL, "main", "main edit", { files: { "README.md": "# main\n" } });
    const { data: pr } = await octokit.rest.pulls.create({
      ...REPO,
      head: "topic",
      base: "main",
      title: "t",
    });
    expect(pr.mergeable).toBe(false);
    const err = await httpError(octokit.rest.pulls.merge({ ...REPO, pull_number: pr.number }));
    expect(err.status).toBe(405);
  });
});

describe("github emulator: auth, rate limits and faults", () => {
  it("rejects requests without the token with 401", async () => {
    const anonymous = new Octokit({ baseUrl: gh.url, log: quiet });
    const missing = await httpError(anonymous.rest.repos.get(REPO));
    expect(missing.status).toBe(401);
    expect(missing.message).toContain("Requires authentication");
    const wrong = new Octokit({ baseUrl: gh.url, auth: "ghp_wrong", log: quiet });
    const bad = await httpError(wrong.rest.repos.get(REPO));
    expect(bad.status).toBe(401);
    expect(bad.message).toContain("Bad credentials");
    const bearer = await fetch(`${gh.url}/repos/acme/api`, { headers: { authorization: "Bearer ghp_test" } });
    expect(bearer.status).toBe(200);
  });

  it("counts down rate-limit headers and answers 403 with remaining 0 when exhausted", async () => {
    const small = await startGitHubEmulator({ rateLimit: 3 });
    try {
      small.createRepo(FULL);
      const client = new Octokit({ baseUrl: small.url, auth: "ghp_test", log: quiet });
      const remaining: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { headers } = await client.rest.repos.get(REPO);
        expect(headers["x-ratelimit-limit"]).toBe("3");
        expect(headers["x-ratelimit-resource"]).toBe("core");
        expect(Number(headers["x-ratelimit-reset"])).toBeGreaterThan(Date.now() / 1000);
        remaining.push(`${headers["x-ratelimit-remaining"]}/${headers["x-ratelimit-used"]}`);
      }
      expect(remaining).toEqual(["2/1", "1/2", "0/3"]);
      const err = await httpError(client.rest.repos.get(REPO));
      expect(err.status).toBe(403);
      expect(err.message).toContain("API rate limit exceeded");
      expect(err.response?.headers["x-ratelimit-remaining"]).toBe("0");
      expect(small.requests().map((r) => r.status)).toEqual([200, 200, 200, 403]);
    } finally {
      await small.close();
    }
  });

  it("injects failures, including a secondary rate limit with retry-after", async () => {
    gh.failNext({ method: "POST", path: /\/deployments$/ }, 429);
    gh.failNext({ path: /\/commits\// }, 502, 2);
    const limited = await httpError(octokit.rest.repos.createDeployment({ ...REPO, ref: "main" }));
    expect(limited.status).toBe(429);
    expect(limited.response?.headers["retry-after"]).toBe("60");
    expect(limited.message).toContain("secondary rate limit");
    expect((await httpError(octokit.rest.repos.getCommit({ ...REPO, ref: "main" }))).status).toBe(502);
    expect((await httpError(octokit.rest.repos.getCommit({ ...REPO, ref: "main" }))).status).toBe(502);
    const { status } = await octokit.rest.repos.getCommit({ ...REPO, ref: "main" });
    expect(status).toBe(200);
    expect(gh.requests().slice(-4)).toEqual([
      { method: "POST", path: "/repos/acme/api/deployments", status: 429 },
      { method: "GET", path: "/repos/acme/api/commits/main", status: 502 },
      { method: "GET", path: "/repos/acme/api/commits/main", status: 502 },
      { method: "GET", path: "/repos/acme/api/commits/main", status: 200 },
    ]);
  });
});
