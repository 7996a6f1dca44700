// REST routes of the GitHub emulator. Each handler answers with GitHub's status codes and error
// bodies (`{ message, documentation_url, status }`, plus `errors` for validation failures).
import type { CheckRun, Commit, CommitStatus, Deployment, PullRequest, Repo, Store } from "./model.ts";
import { blobSha } from "./model.ts";
import {
  commitJson,
  contentFileJson,
  DOCS,
  deploymentJson,
  deploymentStatusJson,
  diffFiles,
  pullJson,
  repoJson,
  statusJson,
  wrappedBase64,
} from "./render.ts";

export interface Ctx {
  method: string;
  segments: string[];
  query: URLSearchParams;
  body: Record<string, unknown>;
  base: string;
  store: Store;
  login: string;
  autoInactiveProduction: boolean;
  now: () => string;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export function fail(status: number, message: string, doc: string, extra?: Record<string, unknown>): Reply {
  return { status, body: { message, ...extra, documentation_url: `${DOCS}${doc}`, status: String(status) } };
}

function ok(body: unknown, status = 200): Reply {
  return { status, body };
}

const notFound = (doc = "") => fail(404, "Not Found", doc);

function validation(doc: string, errors: Array<Record<string, unknown>>): Reply {
  return fail(422, "Validation Failed", doc, { errors });
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** per_page/page slicing with a Link header, as list endpoints do */
function paginate(ctx: Ctx, items: unknown[], wrap?: (page: unknown[]) => unknown): Reply {
  const perPage = Math.min(100, Math.max(1, Number(ctx.query.get("per_page") ?? 30) || 30));
  const page = Math.max(1, Number(ctx.query.get("page") ?? 1) || 1);
  const slice = items.slice((page - 1) * perPage, page * perPage);
  const last = Math.max(1, Math.ceil(items.length / perPage));
  const headers: Record<string, string> = {};
  if (last > 1) {
    const link = (p: number, rel: string) => {
      const q = new URLSearchParams(ctx.query);
      q.set("page", String(p));
      q.set("per_page", String(perPage));
      return `<${ctx.base}/${ctx.segments.map(encodeURIComponent).join("/")}?${q}>; rel="${rel}"`;
    };
    const parts = [];
    if (page < last) parts.push(link(page + 1, "next"), link(last, "last"));
    if (page > 1) parts.push(link(1, "first"), link(page - 1, "prev"));
    headers.link = parts.join(", ");
  }
  return { status: 200, body: wrap ? wrap(slice) : slice, headers };
}

export function route(ctx: Ctx): Reply {
  const [head, owner, name, ...rest] = ctx.segments;
  if (head !== "repos" || !owner || !name) return notFound();
  const repo = ctx.store.repo(`${owner}/${name}`);
  if (!repo) return notFound("/repos/repos#get-a-repository");
  const [section, ...tail] = rest;
  const m = ctx.method;
  if (section === undefined) return m === "GET" ? ok(repoJson(ctx.base, repo)) : notFound();
  switch (section) {
    case "commits":
      return commits(ctx, repo, tail);
    case "branches":
      if (m === "GET" && tail.length > 0) return branch(ctx, repo, tail.join("/"));
      break;
    case "git":
      return git(ctx, repo, tail);
    case "statuses":
      if (m === "POST" && tail.length > 0) return createStatus(ctx, repo, tail.join("/"));
      break;
    case "compare":
      if (m === "GET" && tail.length > 0) return compare(ctx, repo, tail.join("/"));
      break;
    case "deployments":
      return deployments(ctx, repo, tail);
    case "contents":
      if (m === "GET") return getContents(ctx, repo, tail.join("/"));
      if (m === "PUT" && tail.length > 0) return putContents(ctx, repo, tail.join("/"));
      break;
    case "pulls":
      return pulls(ctx, repo, tail);
  }
  return notFound();
}

// ---------------------------------------------------------------- commits, refs, branches

const COMMIT_DOC = "/commits/commits#get-a-commit";

function commits(ctx: Ctx, repo: Repo, tail: string[]): Reply {
  if (ctx.method !== "GET") return notFound();
  if (tail.length === 0) return listCommits(ctx, repo);
  // A ref holding slashes may arrive unencoded, so the trailing keyword decides the route.
  const last = tail[tail.length - 1];
  if (tail.length > 1 && (last === "status" || last === "statuses" || last === "check-runs")) {
    const ref = tail.slice(0, -1).join("/");
    const resolved = ctx.store.resolve(repo, ref);
    if (!resolved) return fail(404, `No commit found for the ref ${ref}`, "/commits/statuses");
    if (last === "status") return combinedStatus(ctx, repo, resolved.sha);
    if (last === "statuses") {
      const list = [...(repo.statuses.get(resolved.sha) ?? [])].reverse();
      return paginate(
        ctx,
        list.map((s) => statusJson(ctx.base, repo, resolved.sha, s, ctx.login)),
      );
    }
    return checkRuns(ctx, repo, resolved.sha);
  }
  const ref = tail.join("/");
  const resolved = ctx.store.resolve(repo, ref);
  if (!resolved) return fail(422, `No commit found for SHA: ${ref}`, COMMIT_DOC);
  return ok(commitJson(ctx.base, ctx.store, repo, ctx.store.commit(repo, resolved.sha), true));
}

function listCommits(ctx: Ctx, repo: Repo): Reply {
  const from = ctx.query.get("sha") ?? repo.defaultBranch;
  const resolved = ctx.store.resolve(repo, from);
  if (!resolved) return fail(404, "Not Found", "/commits/commits#list-commits");
  const list = [...ctx.store.ancestors(repo, resolved.sha)]
    .map((s) => ctx.store.commit(repo, s))
    .sort((a, b) => b.committer.date.localeCompare(a.committer.date) || b.sha.localeCompare(a.sha));
  return paginate(
    ctx,
    list.map((c) => commitJson(ctx.base, ctx.store, repo, c, false)),
  );
}

function branch(ctx: Ctx, repo: Repo, name: string): Reply {
  const sha = repo.branches.get(name);
  if (!sha) return fail(404, "Branch not found", "/branches/branches#get-a-branch");
  const url = `${ctx.base}/repos/${repo.fullName}/branches/${name}`;
  return ok({
    name,
    commit: commitJson(ctx.base, ctx.store, repo, ctx.store.commit(repo, sha), false),
    _links: { self: url, html: `${ctx.base}/${repo.fullName}/tree/${name}` },
    protected: false,
    protection: {
      enabled: false,
      required_status_checks: { enforcement_level: "off", contexts: [], checks: [] },
    },
    protection_url: `${url}/protection`,
  });
}

function refJson(ctx: Ctx, repo: Repo, full: string, sha: string) {
  return {
    ref: full,
    node_id: Buffer.from(`REF:${repo.fullName}:${full}`).toString("base64"),
    url: `${ctx.base}/repos/${repo.fullName}/git/${full}`,
    object: { sha, type: "commit", url: `${ctx.base}/repos/${repo.fullName}/git/commits/${sha}` },
  };
}

function refTable(repo: Repo, full: string): { map: Map<string, string>; name: string } | undefined {
  if (full.startsWith("refs/heads/")) return { map: repo.branches, name: full.slice(11) };
  if (full.startsWith("refs/tags/")) return { map: repo.tags, name: full.slice(10) };
  return undefined;
}

function git(ctx: Ctx, repo: Repo, tail: string[]): Reply {
  const [kind, ...refParts] = tail;
  const refPath = refParts.join("/");
  if (kind === "ref" && ctx.method === "GET") {
    const table = refTable(repo, `refs/${refPath}`);
    const sha = table?.map.get(table.name);
    if (!table || !sha) return notFound("/git/refs#get-a-reference");
    return ok(refJson(ctx, repo, `refs/${refPath}`, sha));
  }
  if (kind !== "refs") return notFound();
  if (ctx.method === "POST" && refParts.length === 0) {
    const ref = str(ctx.body.ref);
    const sha = str(ctx.body.sha);
    if (!ref || !sha)
      return validation("/git/refs#create-a-reference", [{ resource: "Reference", code: "missing_field" }]);
    const table = refTable(repo, ref);
    if (!table || table.name === "") {
      return fail(422, "Reference name must start with 'refs/' and have at least two slashes.", "/git/refs");
    }
    if (!repo.commits.has(sha)) return fail(422, "Object does not exist", "/git/refs#create-a-reference");
    if (table.map.has(table.name))
      return fail(422, "Reference already exists", "/git/refs#create-a-reference");
    table.map.set(table.name, sha);
    return ok(refJson(ctx, repo, ref, sha), 201);
  }
  const table = refTable(repo, `refs/${refPath}`);
  const current = table?.map.get(table.name);
  if (!table || !current) return fail(422, "Reference does not exist", "/git/refs");
  if (ctx.method === "PATCH") {
    const sha = str(ctx.body.sha);
    if (!sha || !repo.commits.has(sha))
      return fail(422, "Object does not exist", "/git/refs#update-a-reference");
    if (ctx.body.force !== true && !ctx.store.ancestors(repo, sha).has(current)) {
      return fail(422, "Update is not a fast forward", "/git/refs#update-a-reference");
    }
    table.map.set(table.name, sha);
    return ok(refJson(ctx, repo, `refs/${refPath}`, sha));
  }
  if (ctx.method === "DELETE") {
    table.map.delete(table.name);
    return { status: 204 };
  }
  return notFound();
}

// ---------------------------------------------------------------- statuses and checks

const STATUS_STATES = new Set(["success", "failure", "pending", "error"]);

function createStatus(ctx: Ctx, repo: Repo, ref: string): Reply {
  const resolved = ctx.store.resolve(repo, ref);
  if (!resolved)
    return fail(422, `No commit found for SHA: ${ref}`, "/commits/statuses#create-a-commit-status");
  const state = str(ctx.body.state);
  if (!state || !STATUS_STATES.has(state)) {
    return validation("/commits/statuses#create-a-commit-status", [
      { resource: "Status", field: "state", code: "invalid" },
    ]);
  }
  const status = addStatus(ctx.store, repo, resolved.sha, {
    state: state as CommitStatus["state"],
    context: str(ctx.body.context) ?? "default",
    targetUrl: str(ctx.body.target_url) ?? null,
    description: str(ctx.body.description) ?? null,
    createdAt: ctx.now(),
  });
  return ok(statusJson(ctx.base, repo, resolved.sha, status, ctx.login), 201);
}

export function addStatus(store: Store, repo: Repo, sha: string, s: Omit<CommitStatus, "id">): CommitStatus {
  const status = { id: store.nextId(), ...s };
  const list = repo.statuses.get(sha) ?? [];
  list.push(status);
  repo.statuses.set(sha, list);
  return status;
}

/** newest status per context */
export function latestStatuses(repo: Repo, sha: string): CommitStatus[] {
  const latest = new Map<string, CommitStatus>();
  for (const s of repo.statuses.get(sha) ?? []) latest.set(s.context, s);
  return [...latest.values()];
}

/** newest run per check name (GitHub's default `filter=latest`) */
export function latestCheckRuns(repo: Repo, sha: string): CheckRun[] {
  const latest = new Map<string, CheckRun>();
  for (const r of repo.checkRuns.get(sha) ?? []) latest.set(r.name, r);
  return [...latest.values()];
}

function combinedStatus(ctx: Ctx, repo: Repo, sha: string): Reply {
  const statuses = latestStatuses(repo, sha);
  // failure beats pending beats success; no statuses at all reads as pending
  let state = "success";
  if (statuses.length === 0 || statuses.some((s) => s.state === "pending")) state = "pending";
  if (statuses.some((s) => s.state === "failure" || s.state === "error")) state = "failure";
  return ok({
    state,
    statuses: statuses.map((s) => statusJson(ctx.base, repo, sha, s, ctx.login)),
    sha,
    total_count: statuses.length,
    repository: repoJson(ctx.base, repo),
    commit_url: `${ctx.base}/repos/${repo.fullName}/commits/${sha}`,
    url: `${ctx.base}/repos/${repo.fullName}/commits/${sha}/status`,
  });
}

function checkRuns(ctx: Ctx, repo: Repo, sha: string): Reply {
  let runs =
    ctx.query.get("filter") === "all" ? [...(repo.checkRuns.get(sha) ?? [])] : latestCheckRuns(repo, sha);
  const name = ctx.query.get("check_name");
  const status = ctx.query.get("status");
  if (name) runs = runs.filter((r) => r.name === name);
  if (status) runs = runs.filter((r) => r.status === status);
  runs.sort((a, b) => b.id - a.id);
  const app = { id: 15368, slug: "github-actions", name: "GitHub Actions" };
  const json = runs.map((r) => ({
    id: r.id,
    head_sha: r.headSha,
    node_id: Buffer.from(`CR:${r.id}`).toString("base64"),
    external_id: String(r.id),
    url: `${ctx.base}/repos/${repo.fullName}/check-runs/${r.id}`,
    html_url: `${ctx.base}/${repo.fullName}/runs/${r.id}`,
    details_url: `${ctx.base}/${repo.fullName}/runs/${r.id}`,
    status: r.status,
    conclusion: r.conclusion,
    started_at: r.startedAt,
    completed_at: r.completedAt,
    output: { title: null, summary: null, text: null, annotations_count: 0, annotations_url: "" },
    name: r.name,
    check_suite: { id: r.id },
    app,
    pull_requests: [],
  }));
  return paginate(ctx, json, (page) => ({ total_count: json.length, check_runs: page }));
}

// ---------------------------------------------------------------- compare

function compare(ctx: Ctx, repo: Repo, basehead: string): Reply {
  const doc = "/commits/commits#compare-two-commits";
  const match = /^(.+?)\.{2,3}(.+)$/.exec(basehead);
  if (!match?.[1] || !match[2]) return notFound(doc);
  const base = ctx.store.resolve(repo, match[1]);
  const head = ctx.store.resolve(repo, match[2]);
  if (!base || !head) return notFound(doc);
  const mergeBase = ctx.store.mergeBase(repo, base.sha, head.sha);
  if (!mergeBase) return fail(404, `No common ancestor between ${match[1]} and ${match[2]}.`, doc);
  const ahead = ctx.store.between(repo, base.sha, head.sha);
  const behind = ctx.store.between(repo, head.sha, base.sha);
  const status =
    base.sha === head.sha
      ? "identical"
      : behind.length === 0
        ? "ahead"
        : ahead.length === 0
          ? "behind"
          : "diverged";
  const render = (c: Commit) => commitJson(ctx.base, ctx.store, repo, c, false);
  const url = `${ctx.base}/repos/${repo.fullName}/compare/${basehead}`;
  return ok({
    url,
    html_url: `${ctx.base}/${repo.fullName}/compare/${basehead}`,
    permalink_url: `${ctx.base}/${repo.fullName}/compare/${repo.owner}:${base.sha.slice(0, 7)}...${repo.owner}:${head.sha.slice(0, 7)}`,
    diff_url: `${ctx.base}/${repo.fullName}/compare/${basehead}.diff`,
    patch_url: `${ctx.base}/${repo.fullName}/compare/${basehead}.patch`,
    base_commit: render(ctx.store.commit(repo, base.sha)),
    merge_base_commit: render(ctx.store.commit(repo, mergeBase)),
    status,
    ahead_by: ahead.length,
    behind_by: behind.length,
    total_commits: ahead.length,
    // GitHub caps the embedded list at 250 commits.
    commits: ahead.slice(0, 250).map(render),
    files: diffFiles(
      ctx.base,
      repo,
      ctx.store.commit(repo, mergeBase).files,
      ctx.store.commit(repo, head.sha).files,
      head.sha,
    ),
  });
}

// ---------------------------------------------------------------- deployments

const DEPLOY_DOC = "/deployments/deployments#create-a-deployment";
const DEPLOY_STATES = new Set([
  "error",
  "failure",
  "inactive",
  "in_progress",
  "queued",
  "pending",
  "success",
]);

function checkState(run: CheckRun): string {
  if (run.status !== "completed") return "pending";
  return run.conclusion === "success" || run.conclusion === "neutral" || run.conclusion === "skipped"
    ? "success"
    : "failure";
}

function deployments(ctx: Ctx, repo: Repo, tail: string[]): Reply {
  const [idText, sub, statusId] = tail;
  if (idText === undefined) {
    if (ctx.method === "POST") return createDeployment(ctx, repo);
    if (ctx.method !== "GET") return notFound();
    let list = [...repo.deployments].reverse();
    for (const key of ["sha", "ref", "task", "environment"] as const) {
      const want = ctx.query.get(key);
      if (want) list = list.filter((d) => d[key] === want);
    }
    return paginate(
      ctx,
      list.map((d) => deploymentJson(ctx.base, repo, d, ctx.login)),
    );
  }
  const deployment = repo.deployments.find((d) => String(d.id) === idText);
  if (!deployment) return notFound("/deployments/deployments#get-a-deployment");
  if (sub === undefined && ctx.method === "GET")
    return ok(deploymentJson(ctx.base, repo, deployment, ctx.login));
  if (sub !== "statuses") return notFound();
  if (statusId !== undefined) {
    const s = deployment.statuses.find((x) => String(x.id) === statusId);
    return s && ctx.method === "GET"
      ? ok(deploymentStatusJson(ctx.base, repo, deployment, s, ctx.login))
      : notFound("/deployments/statuses#get-a-deployment-status");
  }
  if (ctx.method === "GET") {
    return paginate(
      ctx,
      [...deployment.statuses]
        .reverse()
        .map((s) => deploymentStatusJson(ctx.base, repo, deployment, s, ctx.login)),
    );
  }
  if (ctx.method === "POST") return createDeploymentStatus(ctx, repo, deployment);
  return notFound();
}

function createDeployment(ctx: Ctx, repo: Repo): Reply {
  const ref = str(ctx.body.ref);
  if (!ref) return validation(DEPLOY_DOC, [{ resource: "Deployment", field: "ref", code: "missing_field" }]);
  const resolved = ctx.store.resolve(repo, ref);
  if (!resolved) return fail(422, `No ref found for: ${ref}`, DEPLOY_DOC);
  const store = ctx.store;

  // auto_merge (default true): a ref that does not contain the default branch gets it merged in.
  // Only a branch can take that merge; a tag or sha behind the default branch is a conflict, which
  // is why rollbacks to an older commit must pass auto_merge: false.
  const defaultSha = repo.branches.get(repo.defaultBranch);
  if (ctx.body.auto_merge !== false && defaultSha && !store.ancestors(repo, resolved.sha).has(defaultSha)) {
    const target = resolved.kind === "branch" ? `refs/heads/${resolved.name}` : ref;
    if (resolved.kind !== "branch")
      return fail(409, `Conflict merging ${repo.defaultBranch} into ${target}.`, DEPLOY_DOC);
    const merged = store.merge(repo, resolved.sha, defaultSha);
    if ("conflicts" in merged)
      return fail(409, `Conflict merging ${repo.defaultBranch} into ${target}.`, DEPLOY_DOC);
    const date = ctx.now();
    const commit = store.addCommit(repo, {
      parents: [resolved.sha, defaultSha],
      message: `Merge ${repo.defaultBranch} into ${resolved.name}`,
      files: merged.files,
      author: { name: "GitHub", email: "noreply@github.com", date, login: "web-flow" },
    });
    repo.branches.set(resolved.name, commit.sha);
    // 202: the merge happened and no deployment was created; the new commit needs its own checks.
    return ok({ message: `Auto-merged ${repo.defaultBranch} into ${resolved.name} on deployment.` }, 202);
  }

  // Commit status verification: every listed context (all known contexts when the list is
  // omitted) must be success; an empty list skips the check. Check runs count as contexts too.
  const contexts = [
    ...latestStatuses(repo, resolved.sha).map((s) => ({ context: s.context, state: s.state as string })),
    ...latestCheckRuns(repo, resolved.sha).map((r) => ({ context: r.name, state: checkState(r) })),
  ];
  const required = Array.isArray(ctx.body.required_contexts)
    ? ctx.body.required_contexts.filter((c): c is string => typeof c === "string")
    : undefined;
  const relevant =
    required === undefined
      ? contexts
      : required.map(
          (name) => contexts.find((c) => c.context === name) ?? { context: name, state: "missing" },
        );
  if (relevant.some((c) => c.state !== "success")) {
    return fail(409, `Conflict: Commit status checks failed for ${ref}.`, DEPLOY_DOC, {
      errors: [
        {
          contexts: relevant.filter((c) => c.state !== "missing"),
          resource: "Deployment",
          field: "required_contexts",
          code: "invalid",
        },
      ],
    });
  }

  const environment = str(ctx.body.environment) ?? "production";
  const now = ctx.now();
  const deployment: Deployment = {
    id: store.nextId(),
    ref,
    sha: resolved.sha,
    task: str(ctx.body.task) ?? "deploy",
    payload: typeof ctx.body.payload === "string" ? tryJson(ctx.body.payload) : (ctx.body.payload ?? {}),
    originalEnvironment: environment,
    environment,
    description: str(ctx.body.description) ?? null,
    transient: ctx.body.transient_environment === true,
    production:
      typeof ctx.body.production_environment === "boolean"
        ? ctx.body.production_environment
        : environment === "production",
    createdAt: now,
    updatedAt: now,
    statuses: [],
  };
  repo.deployments.push(deployment);
  return ok(deploymentJson(ctx.base, repo, deployment, ctx.login), 201);
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function createDeploymentStatus(ctx: Ctx, repo: Repo, deployment: Deployment): Reply {
  const state = str(ctx.body.state);
  if (!state || !DEPLOY_STATES.has(state)) {
    return validation("/deployments/statuses#create-a-deployment-status", [
      { resource: "DeploymentStatus", field: "state", code: "invalid" },
    ]);
  }
  const environment = str(ctx.body.environment) ?? deployment.environment;
  const logUrl = str(ctx.body.log_url) ?? str(ctx.body.target_url) ?? "";
  const status = {
    id: ctx.store.nextId(),
    state,
    description: str(ctx.body.description) ?? "",
    environment,
    environmentUrl: str(ctx.body.environment_url) ?? "",
    logUrl,
    createdAt: ctx.now(),
  };
  deployment.statuses.push(status);
  deployment.environment = environment;
  deployment.updatedAt = status.createdAt;
  if (state === "success" && ctx.body.auto_inactive !== false) {
    // Earlier, non-transient deployments of the same environment whose latest state is success
    // are superseded: they get an inactive status of their own.
    for (const prior of repo.deployments) {
      if (prior.id >= deployment.id || prior.transient || prior.environment !== environment) continue;
      if (prior.production && !ctx.autoInactiveProduction) continue;
      if (prior.statuses.at(-1)?.state !== "success") continue;
      prior.statuses.push({
        ...status,
        id: ctx.store.nextId(),
        state: "inactive",
        description: "",
        logUrl: "",
      });
      prior.updatedAt = status.createdAt;
    }
  }
  return ok(deploymentStatusJson(ctx.base, repo, deployment, status, ctx.login), 201);
}

// ---------------------------------------------------------------- contents

const CONTENTS_DOC = "/repos/contents#create-or-update-file-contents";

function getContents(ctx: Ctx, repo: Repo, path: string): Reply {
  const ref = ctx.query.get("ref") ?? repo.defaultBranch;
  const resolved = ctx.store.resolve(repo, ref);
  if (!resolved)
    return fail(404, `No commit found for the ref ${ref}`, "/repos/contents#get-repository-content");
  const files = ctx.store.commit(repo, resolved.sha).files;
  const content = files.get(path);
  if (content !== undefined) {
    return ok({ ...contentFileJson(ctx.base, repo, path, content, ref), content: wrappedBase64(content) });
  }
  // A directory: list its direct children.
  const prefix = path === "" ? "" : `${path}/`;
  const entries = new Map<string, unknown>();
  for (const [p, c] of files) {
    if (!p.startsWith(prefix)) continue;
    const [child, ...deeper] = p.slice(prefix.length).split("/");
    if (!child) continue;
    if (deeper.length === 0) entries.set(child, contentFileJson(ctx.base, repo, p, c, ref));
    else if (!entries.has(child)) {
      entries.set(child, {
        type: "dir",
        name: child,
        path: `${prefix}${child}`,
        sha: blobSha(`dir:${prefix}${child}`),
      });
    }
  }
  if (entries.size === 0) return notFound("/repos/contents#get-repository-content");
  return ok([...entries.values()]);
}

function putContents(ctx: Ctx, repo: Repo, path: string): Reply {
  const message = str(ctx.body.message);
  const content = str(ctx.body.content);
  if (message === undefined)
    return fail(422, 'Invalid request.\n\n"message" wasn\'t supplied.', CONTENTS_DOC);
  if (content === undefined)
    return fail(422, 'Invalid request.\n\n"content" wasn\'t supplied.', CONTENTS_DOC);
  const branchName = str(ctx.body.branch) ?? repo.defaultBranch;
  const parent = repo.branches.get(branchName);
  if (!parent) return fail(404, `Branch ${branchName} not found`, CONTENTS_DOC);
  const files = new Map(ctx.store.commit(repo, parent).files);
  const existing = files.get(path);
  const sha = str(ctx.body.sha);
  if (existing !== undefined) {
    if (sha === undefined) return fail(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', CONTENTS_DOC);
    // A stale or wrong blob sha is a 409 naming the path, not a validation failure.
    if (sha !== blobSha(existing)) return fail(409, `${path} does not match ${sha}`, CONTENTS_DOC);
  }
  const text = Buffer.from(content, "base64").toString("utf8");
  files.set(path, text);
  const date = ctx.now();
  const who = (v: unknown) => {
    const o = v as { name?: unknown; email?: unknown } | undefined;
    return typeof o?.name === "string" && typeof o.email === "string"
      ? { name: o.name, email: o.email }
      : undefined;
  };
  const author = who(ctx.body.author) ??
    who(ctx.body.committer) ?? { name: ctx.login, email: `${ctx.login}@users.noreply` };
  const committer = who(ctx.body.committer) ?? author;
  const commit = ctx.store.addCommit(repo, {
    parents: [parent],
    message,
    files,
    author: { ...author, date, login: ctx.login },
    committer: { ...committer, date, login: ctx.login },
  });
  repo.branches.set(branchName, commit.sha);
  const full = commitJson(ctx.base, ctx.store, repo, commit, false);
  return ok(
    {
      content: contentFileJson(ctx.base, repo, path, text, branchName),
      commit: {
        sha: commit.sha,
        node_id: full.node_id,
        url: (full.commit as { url: string }).url,
        html_url: full.html_url,
        author: (full.commit as { author: unknown }).author,
        committer: (full.commit as { committer: unknown }).committer,
        message,
        tree: (full.commit as { tree: unknown }).tree,
        parents: full.parents,
        verification: (full.commit as { verification: unknown }).verification,
      },
    },
    existing === undefined ? 201 : 200,
  );
}

// ---------------------------------------------------------------- pull requests

const PULLS_DOC = "/pulls/pulls";

function pulls(ctx: Ctx, repo: Repo, tail: string[]): Reply {
  const [numText, sub] = tail;
  if (numText === undefined) {
    if (ctx.method === "POST") return createPull(ctx, repo);
    if (ctx.method === "GET") {
      const state = ctx.query.get("state") ?? "open";
      const list = [...repo.pulls].reverse().filter((p) => state === "all" || p.state === state);
      return paginate(
        ctx,
        list.map((p) => pullJson(ctx.base, ctx.store, repo, p, ctx.login)),
      );
    }
    return notFound();
  }
  const pr = repo.pulls.find((p) => String(p.number) === numText);
  if (!pr) return notFound(`${PULLS_DOC}#get-a-pull-request`);
  if (sub === undefined && ctx.method === "GET")
    return ok(pullJson(ctx.base, ctx.store, repo, pr, ctx.login));
  if (sub === "merge" && ctx.method === "PUT") return mergePull(ctx, repo, pr);
  if (sub === "merge" && ctx.method === "GET") return { status: pr.merged ? 204 : 404 };
  return notFound();
}

function createPull(ctx: Ctx, repo: Repo): Reply {
  const doc = `${PULLS_DOC}#create-a-pull-request`;
  const title = str(ctx.body.title);
  const headRaw = str(ctx.body.head);
  const base = str(ctx.body.base);
  const missing = [
    ...(headRaw ? [] : ["head"]),
    ...(base ? [] : ["base"]),
    ...(title || ctx.body.issue ? [] : ["title"]),
  ];
  if (missing.length > 0 || !headRaw || !base) {
    return validation(
      doc,
      missing.map((field) => ({ resource: "PullRequest", field, code: "missing_field" })),
    );
  }
  const head = headRaw.includes(":") ? headRaw.slice(headRaw.indexOf(":") + 1) : headRaw;
  const errors = [
    ...(repo.branches.has(head) ? [] : [{ resource: "PullRequest", field: "head", code: "invalid" }]),
    ...(repo.branches.has(base) ? [] : [{ resource: "PullRequest", field: "base", code: "invalid" }]),
  ];
  if (errors.length > 0) return validation(doc, errors);
  const headSha = repo.branches.get(head) ?? "";
  const baseSha = repo.branches.get(base) ?? "";
  if (repo.pulls.some((p) => p.state === "open" && p.head === head && p.base === base)) {
    return validation(doc, [
      {
        resource: "PullRequest",
        code: "custom",
        message: `A pull request already exists for ${repo.owner}:${head}.`,
      },
    ]);
  }
  if (ctx.store.between(repo, baseSha, headSha).length === 0) {
    return validation(doc, [
      { resource: "PullRequest", code: "custom", message: `No commits between ${base} and ${head}` },
    ]);
  }
  const now = ctx.now();
  const pr: PullRequest = {
    id: ctx.store.nextId(),
    number: nextIssueNumber(repo),
    title: title ?? "",
    body: str(ctx.body.body) ?? null,
    head,
    base,
    state: "open",
    merged: false,
    mergedAt: null,
    mergeCommitSha: null,
    closedAt: null,
    createdAt: now,
    updatedAt: now,
    draft: ctx.body.draft === true,
  };
  repo.pulls.push(pr);
  return ok(pullJson(ctx.base, ctx.store, repo, pr, ctx.login), 201);
}

function nextIssueNumber(repo: Repo): number {
  return repo.pulls.reduce((n, p) => Math.max(n, p.number), 0) + 1;
}

function mergePull(ctx: Ctx, repo: Repo, pr: PullRequest): Reply {
  const doc = `${PULLS_DOC}#merge-a-pull-request`;
  const headSha = repo.branches.get(pr.head);
  const baseSha = repo.branches.get(pr.base);
  if (pr.state !== "open" || pr.draft || !headSha || !baseSha)
    return fail(405, "Pull Request is not mergeable", doc);
  const expected = str(ctx.body.sha);
  if (expected !== undefined && expected !== headSha) {
    return fail(409, "Head branch was modified. Review and try the merge again.", doc);
  }
  const merged = ctx.store.merge(repo, baseSha, headSha);
  if ("conflicts" in merged) return fail(405, "Pull Request is not mergeable", doc);
  const method = str(ctx.body.merge_method) ?? "merge";
  if (!["merge", "squash", "rebase"].includes(method)) {
    return validation(doc, [{ resource: "PullRequest", field: "merge_method", code: "invalid" }]);
  }
  const date = ctx.now();
  const title =
    str(ctx.body.commit_title) ??
    (method === "merge"
      ? `Merge pull request #${pr.number} from ${repo.owner}/${pr.head}`
      : `${pr.title} (#${pr.number})`);
  const extra = str(ctx.body.commit_message);
  // rebase is recorded as one commit on top of base, like squash; the emulator keeps no patch series.
  const commit = ctx.store.addCommit(repo, {
    parents: method === "merge" ? [baseSha, headSha] : [baseSha],
    message: extra ? `${title}\n\n${extra}` : title,
    files: merged.files,
    author: { name: ctx.login, email: `${ctx.login}@users.noreply`, date, login: ctx.login },
    committer: { name: "GitHub", email: "noreply@github.com", date, login: "web-flow" },
  });
  repo.branches.set(pr.base, commit.sha);
  Object.assign(pr, {
    state: "closed",
    merged: true,
    mergedAt: date,
    closedAt: date,
    updatedAt: date,
    mergeCommitSha: commit.sha,
  });
  return ok({ sha: commit.sha, merged: true, message: "Pull Request successfully merged" });
}
