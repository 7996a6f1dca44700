import { ShipbotError } from "../../core/errors.ts";
import type { GitHubClient } from "../../github/create-github-client.ts";
import { formatRepo, type RepoRef } from "../../github/repo-ref.ts";
import { gitHubStatus, toGitHubError } from "../../github/to-github-error.ts";
import type { ExecutionContext, Target } from "../port.ts";
import { holdsValue, readConfigScalar, type ValueLocation, writeConfigValue } from "./edit-config-yaml.ts";

export interface ConfigFile {
  repo: RepoRef;
  branch: string;
  path: string;
  mode: "commit" | "pull-request";
  autoMerge: boolean;
  mergeMethod: "merge" | "squash" | "rebase";
}

export interface ChangeRequest {
  file: ConfigFile;
  target: Target;
  location: ValueLocation;
  /**
   * The value to write, computed from the current one as the file spells it (e.g. keep a full image
   * reference a full one).
   */
  value(current: string | undefined): string | number;
  /** Refuses a file the change cannot work with (throws); runs on every read of the target branch. */
  validate?(text: string): void;
  /**
   * Refuses a change the target could not roll out (throws). Runs once a write is decided and before
   * anything is written, so a retried job that finds its own commit resumes without it.
   */
  beforeWrite?(): Promise<void>;
  /** Commit title, e.g. "deploy ghcr.io/acme/api:3f2c1ab to api in production". */
  title: string;
  ctx: ExecutionContext;
  committer?: { name: string; email: string };
  maxAttempts: number;
  log: { debug(fields: Record<string, unknown>, message: string): void };
}

export interface ChangeOutcome {
  /**
   * committed: this run wrote it; resumed: an earlier run of the same job wrote it; unchanged: the file
   * already held the value; pending-review: a pull request waits for someone to merge it.
   */
  kind: "committed" | "resumed" | "unchanged" | "pending-review";
  /** The value before the change as the file spelled it (from this job's commit trailer when resumed). */
  previous: string | undefined;
  value: string | number;
  /** The commit on the target branch that carries the change, when known. */
  commitSha?: string;
  pullRequest?: { number: number; url: string };
}

interface PullInfo {
  number: number;
  html_url: string;
  state: string;
  merged_at: string | null;
  head: { ref: string };
}

interface ShipbotCommit {
  sha: string;
  jobId: string;
  fence: number;
  target: string;
  previous: string | undefined;
}

const trailer = (name: string, message: string): string | undefined =>
  new RegExp(`^${name}: (.+)$`, "m").exec(message)?.[1]?.trim();

function targetKey(target: Target): string {
  return `${target.namespace}/${target.deployment}`;
}

/** Trailers identify the job, its fencing token and the value it replaced; they survive squash merges. */
function commitMessage(request: ChangeRequest, previous: string | undefined): string {
  return [
    request.title,
    "",
    `Requested through shipbot (job ${request.ctx.jobId}).`,
    "",
    `Shipbot-Job: ${request.ctx.jobId}`,
    `Shipbot-Fence: ${request.ctx.fence}`,
    `Shipbot-Target: ${targetKey(request.target)}`,
    ...(previous === undefined ? [] : [`Shipbot-Previous: ${previous}`]),
  ].join("\n");
}

/** Branch name of a job's pull request: deterministic, so a retried job finds its own. */
export function pullRequestBranch(target: Target, jobId: string): string {
  return `shipbot/${target.namespace}-${target.deployment}-${jobId}`.replace(/[^A-Za-z0-9._/-]/g, "-");
}

/**
 * Writes one value into a file of a config repository, exactly once per job: directly to the branch, or
 * through a pull request (merged when autoMerge). The write carries the file's blob sha, so a concurrent
 * edit is a 409 that makes it read and decide again; commit trailers let a retried job recognise its own
 * commit, and a newer fencing token on the same target stops a stale one.
 */
export async function writeConfigChange(
  github: GitHubClient,
  request: ChangeRequest,
): Promise<ChangeOutcome> {
  const { file, ctx } = request;
  const repo = file.repo;
  const full = formatRepo(repo);
  const req = { request: { signal: ctx.signal } };
  const call = async <T>(action: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw toGitHubError(error, { action, repo: full });
    }
  };

  const readFile = async (ref: string): Promise<{ text: string; blobSha: string }> => {
    const { data } = await call(`read ${file.path} on ${ref}`, () =>
      github.rest.repos.getContent({ ...repo, path: file.path, ref, ...req }),
    );
    if (Array.isArray(data) || data.type !== "file" || typeof data.content !== "string") {
      throw new ShipbotError(
        "usage",
        `${full}/${file.path} is not a file; point the GitOps path at a YAML file`,
        {
          retryable: false,
        },
      );
    }
    return { text: Buffer.from(data.content, "base64").toString("utf8"), blobSha: data.sha };
  };

  const recentShipbotCommits = async (ref: string): Promise<ShipbotCommit[]> => {
    const { data } = await call(`read the history of ${file.path}`, () =>
      github.rest.repos.listCommits({ ...repo, sha: ref, path: file.path, per_page: 20, ...req }),
    );
    const out: ShipbotCommit[] = [];
    for (const c of data) {
      const jobId = trailer("Shipbot-Job", c.commit.message);
      const target = trailer("Shipbot-Target", c.commit.message);
      if (jobId === undefined || target === undefined) continue;
      out.push({
        sha: c.sha,
        jobId,
        target,
        fence: Number(trailer("Shipbot-Fence", c.commit.message) ?? 0),
        previous: trailer("Shipbot-Previous", c.commit.message),
      });
    }
    return out;
  };

  /**
   * Decides from the target branch alone: done already (by this job or anyone), refused (a newer
   * operation owns the target, or the value moved on after this job's commit), or a write is needed.
   */
  const decide = async (
    text: string,
    attempted: boolean,
  ): Promise<
    { done: ChangeOutcome } | { write: { current: string | undefined; value: string | number } }
  > => {
    request.validate?.(text);
    const scalar = readConfigScalar(text, request.location, `${full}/${file.path}`);
    const current = scalar?.text;
    const value = request.value(current);
    const history = (await recentShipbotCommits(file.branch)).filter(
      (c) => c.target === targetKey(request.target),
    );
    const ours = history.find((c) => c.jobId === ctx.jobId);
    // Like the Deployment annotation, only the latest writer's token counts.
    const latest = history[0];
    const others = latest && latest.jobId !== ctx.jobId ? latest : undefined;
    const newer = others && others.fence > ctx.fence ? others : undefined;
    // A retried job holds a new token; another job that wrote since this one's first attempt began
    // carries the later request, and writing this one's older value now would undo it.
    const first = ctx.firstFence ?? ctx.fence;
    const since = others && others.fence > first ? others : undefined;
    if (ours && holdsValue(scalar, value)) {
      // attempted: this run's own write whose answer was lost (a retried PUT then met its own change).
      return {
        done: {
          kind: attempted ? "committed" : "resumed",
          previous: ours.previous,
          value,
          commitSha: ours.sha,
        },
      };
    }
    if (newer) {
      throw new ShipbotError(
        "conflict",
        `a newer operation (job ${newer.jobId}, fence ${newer.fence} > ${ctx.fence}) already changed ${full}/${file.path}; this one stops without writing`,
        { retryable: false },
      );
    }
    if (ours) {
      throw new ShipbotError(
        "conflict",
        `${full}/${file.path} changed after this job's commit ${ours.sha.slice(0, 7)}; shipbot will not overwrite the newer change`,
        { retryable: false },
      );
    }
    if (holdsValue(scalar, value)) return { done: { kind: "unchanged", previous: current, value } };
    if (since) {
      throw new ShipbotError(
        "conflict",
        `another operation (job ${since.jobId}, fence ${since.fence} > ${first}) changed ${full}/${file.path} after this job first started; this one stops without writing`,
        { retryable: false },
      );
    }
    return { write: { current, value } };
  };

  /** PUT through the contents API with the blob sha as precondition; false on 409 (someone wrote first). */
  const put = async (
    branch: string,
    text: string,
    blobSha: string,
    message: string,
  ): Promise<{ commitSha: string } | false> => {
    try {
      const { data } = await github.rest.repos.createOrUpdateFileContents({
        ...repo,
        path: file.path,
        branch,
        sha: blobSha,
        message,
        content: Buffer.from(text, "utf8").toString("base64"),
        ...(request.committer === undefined ? {} : { committer: request.committer }),
        ...req,
      });
      return { commitSha: data.commit.sha ?? "" };
    } catch (error) {
      if (gitHubStatus(error) === 409) {
        request.log.debug(
          { path: file.path, branch },
          "config file changed between read and write; reading again",
        );
        return false;
      }
      throw toGitHubError(error, { action: `write ${file.path} on ${branch}`, repo: full });
    }
  };

  const raced = () =>
    new ShipbotError(
      "conflict",
      `${full}/${file.path} kept changing while shipbot wrote it (${request.maxAttempts} attempts); try again`,
      { retryable: true },
    );

  if (file.mode === "commit") {
    let attempted = false;
    for (let attempt = 0; attempt < request.maxAttempts; attempt++) {
      const { text, blobSha } = await readFile(file.branch);
      const decision = await decide(text, attempted);
      if ("done" in decision) return decision.done;
      await request.beforeWrite?.();
      const { current, value } = decision.write;
      const next = writeConfigValue(text, request.location, value, `${full}/${file.path}`);
      attempted = true;
      const written = await put(file.branch, next, blobSha, commitMessage(request, current));
      if (written) return { kind: "committed", previous: current, value, commitSha: written.commitSha };
    }
    throw raced();
  }

  // Pull-request mode.
  const branch = pullRequestBranch(request.target, ctx.jobId);
  const findPull = async (): Promise<PullInfo | undefined> => {
    const { data } = await call("list pull requests", () =>
      github.rest.pulls.list({
        ...repo,
        state: "all",
        head: `${repo.owner}:${branch}`,
        base: file.branch,
        per_page: 100,
        ...req,
      }),
    );
    return data.find((p) => p.head.ref === branch);
  };
  const branchExists = async (): Promise<boolean> => {
    try {
      await github.rest.git.getRef({ ...repo, ref: `heads/${branch}`, ...req });
      return true;
    } catch (error) {
      if (gitHubStatus(error) === 404) return false;
      throw toGitHubError(error, { action: `read branch ${branch}`, repo: full });
    }
  };

  let attempted = false;
  for (let attempt = 0; attempt < request.maxAttempts; attempt++) {
    const base = await readFile(file.branch);
    const decision = await decide(base.text, attempted);
    if ("done" in decision) return decision.done;
    await request.beforeWrite?.();
    const { current, value } = decision.write;
    const message = commitMessage(request, current);

    let pull = await findPull();
    if (pull?.merged_at) {
      // Merged, yet the base branch lacks the value: someone reverted it since. Not ours to redo.
      throw new ShipbotError(
        "conflict",
        `pull request #${pull.number} of this job was merged but ${full}/${file.path} no longer holds ${value}; shipbot will not redo it`,
        { retryable: false },
      );
    }
    if (!(await branchExists())) {
      const { data: head } = await call(`read branch ${file.branch}`, () =>
        github.rest.git.getRef({ ...repo, ref: `heads/${file.branch}`, ...req }),
      );
      try {
        await github.rest.git.createRef({
          ...repo,
          ref: `refs/heads/${branch}`,
          sha: head.object.sha,
          ...req,
        });
      } catch (error) {
        // 422 "Reference already exists": a retry of this job created it a moment ago.
        if (gitHubStatus(error) !== 422)
          throw toGitHubError(error, { action: `create branch ${branch}`, repo: full });
      }
    }
    const onBranch = await readFile(branch);
    if (!holdsValue(readConfigScalar(onBranch.text, request.location, `${full}/${file.path}`), value)) {
      const next = writeConfigValue(onBranch.text, request.location, value, `${full}/${file.path}`);
      attempted = true;
      if (!(await put(branch, next, onBranch.blobSha, message))) continue;
    }
    if (pull?.state !== "open") {
      try {
        const { data } = await github.rest.pulls.create({
          ...repo,
          head: branch,
          base: file.branch,
          title: request.title,
          body: message.split("\n").slice(2).join("\n"),
          ...req,
        });
        pull = data;
      } catch (error) {
        if (gitHubStatus(error) !== 422)
          throw toGitHubError(error, { action: "open a pull request", repo: full });
        pull = await findPull();
        if (!pull) throw toGitHubError(error, { action: "open a pull request", repo: full });
      }
    }
    const pr = { number: pull.number, url: pull.html_url };
    if (!file.autoMerge) return { kind: "pending-review", previous: current, value, pullRequest: pr };

    let merged: { sha: string };
    try {
      ({ data: merged } = await github.rest.pulls.merge({
        ...repo,
        pull_number: pull.number,
        merge_method: file.mergeMethod,
        commit_title: `${request.title} (#${pull.number})`,
        commit_message: message.split("\n").slice(2).join("\n"),
        ...req,
      }));
    } catch (error) {
      const status = gitHubStatus(error);
      // 409: the head moved under us; read everything again.
      if (status === 409) continue;
      if (status === 405) {
        throw new ShipbotError(
          "conflict",
          `pull request #${pull.number} (${pull.html_url}) cannot be merged (conflicts or branch protection); merge it by hand or close it and deploy again`,
          { cause: error, retryable: false },
        );
      }
      throw toGitHubError(error, { action: `merge pull request #${pull.number}`, repo: full });
    }
    try {
      await github.rest.git.deleteRef({ ...repo, ref: `heads/${branch}`, ...req });
    } catch (error) {
      // A leftover branch is harmless; the deploy itself is done.
      request.log.debug({ branch, err: error }, "could not delete the merged pull request branch");
    }
    return { kind: "committed", previous: current, value, commitSha: merged.sha, pullRequest: pr };
  }
  throw raced();
}
