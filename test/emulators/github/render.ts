// Serializers from the model to the JSON shapes GitHub's REST API returns (the fields a deploy bot
// reads, plus the common envelope fields clients tend to touch).
import type {
  Commit,
  CommitStatus,
  Deployment,
  DeploymentStatus,
  PullRequest,
  Repo,
  Store,
} from "./model.ts";
import { blobSha, sha1 } from "./model.ts";

export const DOCS = "https://docs.github.com/rest";

function numericId(seed: string): number {
  return Number.parseInt(sha1(seed).slice(0, 7), 16);
}

function nodeId(kind: string, id: number | string): string {
  return Buffer.from(`${kind}:${id}`).toString("base64").replace(/=+$/, "");
}

export function user(base: string, login: string, type: "User" | "Organization" | "Bot" = "User") {
  const id = numericId(`user:${login}`);
  return {
    login,
    id,
    node_id: nodeId("U", id),
    avatar_url: `${base}/avatars/${login}`,
    gravatar_id: "",
    url: `${base}/users/${login}`,
    html_url: `${base}/${login}`,
    type,
    site_admin: false,
  };
}

export function repoJson(base: string, repo: Repo) {
  const url = `${base}/repos/${repo.fullName}`;
  return {
    id: repo.id,
    node_id: nodeId("R", repo.id),
    name: repo.name,
    full_name: repo.fullName,
    private: true,
    owner: user(base, repo.owner, "Organization"),
    html_url: `${base}/${repo.fullName}`,
    description: null,
    fork: false,
    url,
    deployments_url: `${url}/deployments`,
    statuses_url: `${url}/statuses/{sha}`,
    default_branch: repo.defaultBranch,
    visibility: "private",
    archived: false,
    disabled: false,
    created_at: repo.createdAt,
    updated_at: repo.createdAt,
    pushed_at: repo.createdAt,
    permissions: { admin: false, maintain: false, push: true, triage: true, pull: true },
  };
}

function diffLines(before: string | undefined, after: string | undefined) {
  // Multiset line difference: close enough to git's counts for the small files tests use.
  const count = (text: string | undefined) => {
    const m = new Map<string, number>();
    if (text === undefined || text === "") return m;
    for (const line of text.replace(/\n$/, "").split("\n")) m.set(line, (m.get(line) ?? 0) + 1);
    return m;
  };
  const a = count(before);
  const b = count(after);
  let deletions = 0;
  let additions = 0;
  for (const [line, n] of a) deletions += Math.max(0, n - (b.get(line) ?? 0));
  for (const [line, n] of b) additions += Math.max(0, n - (a.get(line) ?? 0));
  return { additions, deletions };
}

export function diffFiles(
  base: string,
  repo: Repo,
  from: Map<string, string>,
  to: Map<string, string>,
  ref: string,
) {
  const out = [];
  for (const path of [...new Set([...from.keys(), ...to.keys()])].sort()) {
    const before = from.get(path);
    const after = to.get(path);
    if (before === after) continue;
    const status = before === undefined ? "added" : after === undefined ? "removed" : "modified";
    const { additions, deletions } = diffLines(before, after);
    out.push({
      sha: after === undefined ? null : blobSha(after),
      filename: path,
      status,
      additions,
      deletions,
      changes: additions + deletions,
      blob_url: `${base}/${repo.fullName}/blob/${ref}/${path}`,
      raw_url: `${base}/${repo.fullName}/raw/${ref}/${path}`,
      contents_url: `${base}/repos/${repo.fullName}/contents/${path}?ref=${ref}`,
    });
  }
  return out;
}

export function gitPerson(p: { name: string; email: string; date: string }) {
  return { name: p.name, email: p.email, date: p.date };
}

export function commitJson(base: string, store: Store, repo: Repo, commit: Commit, withFiles: boolean) {
  const url = `${base}/repos/${repo.fullName}/commits/${commit.sha}`;
  const json: Record<string, unknown> = {
    url,
    sha: commit.sha,
    node_id: nodeId("C", commit.sha),
    html_url: `${base}/${repo.fullName}/commit/${commit.sha}`,
    comments_url: `${url}/comments`,
    commit: {
      url: `${base}/repos/${repo.fullName}/git/commits/${commit.sha}`,
      author: gitPerson(commit.author),
      committer: gitPerson(commit.committer),
      message: commit.message,
      comment_count: 0,
      tree: { sha: commit.treeSha, url: `${base}/repos/${repo.fullName}/git/trees/${commit.treeSha}` },
      verification: {
        verified: false,
        reason: "unsigned",
        signature: null,
        payload: null,
        verified_at: null,
      },
    },
    author: commit.author.login ? user(base, commit.author.login) : null,
    committer: commit.committer.login ? user(base, commit.committer.login) : null,
    parents: commit.parents.map((p) => ({
      sha: p,
      url: `${base}/repos/${repo.fullName}/commits/${p}`,
      html_url: `${base}/${repo.fullName}/commit/${p}`,
    })),
  };
  if (withFiles) {
    const parent = commit.parents[0];
    const before = parent ? store.commit(repo, parent).files : new Map<string, string>();
    const files = diffFiles(base, repo, before, commit.files, commit.sha);
    const additions = files.reduce((n, f) => n + f.additions, 0);
    const deletions = files.reduce((n, f) => n + f.deletions, 0);
    json.stats = { total: additions + deletions, additions, deletions };
    json.files = files;
  }
  return json;
}

export function statusJson(base: string, repo: Repo, sha: string, s: CommitStatus, creator: string) {
  return {
    url: `${base}/repos/${repo.fullName}/statuses/${sha}`,
    avatar_url: null,
    id: s.id,
    node_id: nodeId("SC", s.id),
    state: s.state,
    description: s.description,
    target_url: s.targetUrl,
    context: s.context,
    created_at: s.createdAt,
    updated_at: s.createdAt,
    creator: user(base, creator),
  };
}

export function deploymentJson(base: string, repo: Repo, d: Deployment, creator: string) {
  const url = `${base}/repos/${repo.fullName}/deployments/${d.id}`;
  return {
    url,
    id: d.id,
    node_id: nodeId("DE", d.id),
    sha: d.sha,
    ref: d.ref,
    task: d.task,
    payload: d.payload,
    original_environment: d.originalEnvironment,
    environment: d.environment,
    description: d.description,
    creator: user(base, creator),
    created_at: d.createdAt,
    updated_at: d.updatedAt,
    statuses_url: `${url}/statuses`,
    repository_url: `${base}/repos/${repo.fullName}`,
    transient_environment: d.transient,
    production_environment: d.production,
    performed_via_github_app: null,
  };
}

export function deploymentStatusJson(
  base: string,
  repo: Repo,
  d: Deployment,
  s: DeploymentStatus,
  creator: string,
) {
  const deploymentUrl = `${base}/repos/${repo.fullName}/deployments/${d.id}`;
  return {
    url: `${deploymentUrl}/statuses/${s.id}`,
    id: s.id,
    node_id: nodeId("DES", s.id),
    state: s.state,
    creator: user(base, creator),
    description: s.description,
    environment: s.environment,
    target_url: s.logUrl,
    created_at: s.createdAt,
    updated_at: s.createdAt,
    deployment_url: deploymentUrl,
    repository_url: `${base}/repos/${repo.fullName}`,
    environment_url: s.environmentUrl,
    log_url: s.logUrl,
    performed_via_github_app: null,
  };
}

export function pullJson(base: string, store: Store, repo: Repo, pr: PullRequest, creator: string) {
  const url = `${base}/repos/${repo.fullName}/pulls/${pr.number}`;
  const side = (ref: string) => {
    const sha = repo.branches.get(ref) ?? null;
    return {
      label: `${repo.owner}:${ref}`,
      ref,
      sha,
      user: user(base, repo.owner, "Organization"),
      repo: repoJson(base, repo),
    };
  };
  const head = side(pr.head);
  const baseSide = side(pr.base);
  let mergeable: boolean | null = null;
  let mergeableState = "unknown";
  if (pr.state === "open" && head.sha && baseSide.sha) {
    mergeable = !("conflicts" in store.merge(repo, baseSide.sha, head.sha));
    mergeableState = mergeable ? "clean" : "dirty";
  }
  return {
    url,
    id: pr.id,
    node_id: nodeId("PR", pr.id),
    html_url: `${base}/${repo.fullName}/pull/${pr.number}`,
    number: pr.number,
    state: pr.state,
    locked: false,
    title: pr.title,
    user: user(base, creator),
    body: pr.body,
    created_at: pr.createdAt,
    updated_at: pr.updatedAt,
    closed_at: pr.closedAt,
    merged_at: pr.mergedAt,
    merge_commit_sha: pr.mergeCommitSha,
    draft: pr.draft,
    head,
    base: baseSide,
    merged: pr.merged,
    mergeable,
    mergeable_state: mergeableState,
    merged_by: pr.merged ? user(base, creator) : null,
    commits_url: `${url}/commits`,
    statuses_url: head.sha ? `${base}/repos/${repo.fullName}/statuses/${head.sha}` : null,
  };
}

export function contentFileJson(base: string, repo: Repo, path: string, content: string, ref: string) {
  const sha = blobSha(content);
  const url = `${base}/repos/${repo.fullName}/contents/${path}?ref=${encodeURIComponent(ref)}`;
  const gitUrl = `${base}/repos/${repo.fullName}/git/blobs/${sha}`;
  const htmlUrl = `${base}/${repo.fullName}/blob/${ref}/${path}`;
  return {
    type: "file",
    encoding: "base64",
    size: Buffer.byteLength(content),
    name: path.split("/").pop() ?? path,
    path,
    sha,
    url,
    git_url: gitUrl,
    html_url: htmlUrl,
    download_url: `${base}/${repo.fullName}/raw/${ref}/${path}`,
    _links: { self: url, git: gitUrl, html: htmlUrl },
  };
}

/** GitHub wraps base64 content at 60 characters per line */
export function wrappedBase64(content: string): string {
  const b64 = Buffer.from(content, "utf8").toString("base64");
  return `${b64.match(/.{1,60}/g)?.join("\n") ?? ""}\n`;
}
