// In-memory git-ish model behind the GitHub emulator: commits with whole-file trees, branches,
// lightweight tags, commit statuses, check runs, deployments and pull requests.
import { createHash } from "node:crypto";

export interface Person {
  name: string;
  email: string;
  date: string;
  login?: string;
}

export interface Commit {
  sha: string;
  treeSha: string;
  parents: string[];
  message: string;
  author: Person;
  committer: Person;
  files: Map<string, string>;
}

export interface CommitStatus {
  id: number;
  state: "success" | "failure" | "pending" | "error";
  context: string;
  targetUrl: string | null;
  description: string | null;
  createdAt: string;
}

export interface CheckRun {
  id: number;
  name: string;
  headSha: string;
  status: "queued" | "in_progress" | "completed";
  conclusion: string | null;
  startedAt: string;
  completedAt: string | null;
}

export interface DeploymentStatus {
  id: number;
  state: string;
  description: string;
  environment: string;
  environmentUrl: string;
  logUrl: string;
  createdAt: string;
}

export interface Deployment {
  id: number;
  ref: string;
  sha: string;
  task: string;
  payload: unknown;
  originalEnvironment: string;
  environment: string;
  description: string | null;
  transient: boolean;
  production: boolean;
  createdAt: string;
  updatedAt: string;
  statuses: DeploymentStatus[];
}

export interface PullRequest {
  id: number;
  number: number;
  title: string;
  body: string | null;
  head: string;
  base: string;
  state: "open" | "closed";
  merged: boolean;
  mergedAt: string | null;
  mergeCommitSha: string | null;
  closedAt: string | null;
  createdAt: string;
  updatedAt: string;
  draft: boolean;
}

export interface Repo {
  id: number;
  owner: string;
  name: string;
  fullName: string;
  defaultBranch: string;
  createdAt: string;
  commits: Map<string, Commit>;
  branches: Map<string, string>;
  tags: Map<string, string>;
  statuses: Map<string, CommitStatus[]>;
  checkRuns: Map<string, CheckRun[]>;
  deployments: Deployment[];
  pulls: PullRequest[];
}

export function sha1(data: string | Buffer): string {
  return createHash("sha1").update(data).digest("hex");
}

/** git's own blob id, so a sha read from the emulator matches `git hash-object` of the same bytes */
export function blobSha(content: string): string {
  const bytes = Buffer.from(content, "utf8");
  return sha1(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes]));
}

function treeSha(files: Map<string, string>): string {
  const lines = [...files.keys()].sort().map((p) => `${p}\0${blobSha(files.get(p) ?? "")}`);
  return sha1(`tree\0${lines.join("\n")}`);
}

export type ResolvedRef = { sha: string; kind: "branch" | "tag" | "sha"; name: string };

export class Store {
  readonly repos = new Map<string, Repo>();
  private ids = 1000;
  // A synthetic clock for seeded commits keeps shas and dates identical from run to run.
  private tick = 0;

  nextId(): number {
    this.ids += 1;
    return this.ids;
  }

  seededDate(): string {
    this.tick += 1;
    return new Date(Date.UTC(2024, 0, 1) + this.tick * 60_000).toISOString();
  }

  repo(fullName: string): Repo | undefined {
    return this.repos.get(fullName.toLowerCase());
  }

  mustRepo(fullName: string): Repo {
    const repo = this.repo(fullName);
    if (!repo) throw new Error(`github emulator: no repository ${fullName}`);
    return repo;
  }

  createRepo(fullName: string, files?: Record<string, string>): Repo {
    const [owner, name, ...extra] = fullName.split("/");
    if (!owner || !name || extra.length > 0)
      throw new Error(`github emulator: bad repository name ${fullName}`);
    if (this.repo(fullName)) throw new Error(`github emulator: repository ${fullName} already exists`);
    const repo: Repo = {
      id: this.nextId(),
      owner,
      name,
      fullName,
      defaultBranch: "main",
      createdAt: this.seededDate(),
      commits: new Map(),
      branches: new Map(),
      tags: new Map(),
      statuses: new Map(),
      checkRuns: new Map(),
      deployments: [],
      pulls: [],
    };
    this.repos.set(fullName.toLowerCase(), repo);
    const initial = this.addCommit(repo, {
      parents: [],
      message: "Initial commit",
      files: new Map(Object.entries(files ?? { "README.md": `# ${name}\n` })),
      author: { name: "Octo Cat", email: "octocat@example.com", date: this.seededDate(), login: "octocat" },
    });
    repo.branches.set("main", initial.sha);
    return repo;
  }

  addCommit(
    repo: Repo,
    input: {
      parents: string[];
      message: string;
      files: Map<string, string>;
      author: Person;
      committer?: Person;
    },
  ): Commit {
    const tree = treeSha(input.files);
    const committer = input.committer ?? input.author;
    const sha = sha1(
      [
        `tree ${tree}`,
        ...input.parents.map((p) => `parent ${p}`),
        `author ${input.author.name} <${input.author.email}> ${input.author.date}`,
        `committer ${committer.name} <${committer.email}> ${committer.date}`,
        `repo ${repo.fullName} #${repo.commits.size}`,
        "",
        input.message,
      ].join("\n"),
    );
    const commit: Commit = {
      sha,
      treeSha: tree,
      parents: input.parents,
      message: input.message,
      author: input.author,
      committer,
      files: input.files,
    };
    repo.commits.set(sha, commit);
    return commit;
  }

  /** branch, tag, `heads/x`, `refs/tags/x`, full sha or an unambiguous abbreviation (≥ 4 hex) */
  resolve(repo: Repo, ref: string): ResolvedRef | undefined {
    let name = ref;
    for (const prefix of ["refs/heads/", "heads/"]) {
      if (name.startsWith(prefix)) {
        const sha = repo.branches.get(name.slice(prefix.length));
        return sha ? { sha, kind: "branch", name: name.slice(prefix.length) } : undefined;
      }
    }
    for (const prefix of ["refs/tags/", "tags/"]) {
      if (name.startsWith(prefix)) {
        const sha = repo.tags.get(name.slice(prefix.length));
        return sha ? { sha, kind: "tag", name: name.slice(prefix.length) } : undefined;
      }
    }
    name = ref;
    const branch = repo.branches.get(name);
    if (branch) return { sha: branch, kind: "branch", name };
    const tag = repo.tags.get(name);
    if (tag) return { sha: tag, kind: "tag", name };
    if (/^[0-9a-f]{4,40}$/i.test(name)) {
      const lower = name.toLowerCase();
      if (repo.commits.has(lower)) return { sha: lower, kind: "sha", name: lower };
      const matches = [...repo.commits.keys()].filter((s) => s.startsWith(lower));
      if (matches.length === 1 && matches[0]) return { sha: matches[0], kind: "sha", name: lower };
    }
    return undefined;
  }

  commit(repo: Repo, sha: string): Commit {
    const commit = repo.commits.get(sha);
    if (!commit) throw new Error(`github emulator: no commit ${sha} in ${repo.fullName}`);
    return commit;
  }

  /** every commit reachable from `sha`, including it */
  ancestors(repo: Repo, sha: string): Set<string> {
    const seen = new Set<string>();
    const queue = [sha];
    while (queue.length > 0) {
      const next = queue.pop();
      if (next === undefined || seen.has(next)) continue;
      seen.add(next);
      queue.push(...this.commit(repo, next).parents);
    }
    return seen;
  }

  /** nearest common ancestor, found breadth first from `head` */
  mergeBase(repo: Repo, base: string, head: string): string | undefined {
    const fromBase = this.ancestors(repo, base);
    const seen = new Set<string>();
    const queue = [head];
    while (queue.length > 0) {
      const next = queue.shift();
      if (next === undefined || seen.has(next)) continue;
      if (fromBase.has(next)) return next;
      seen.add(next);
      queue.push(...this.commit(repo, next).parents);
    }
    return undefined;
  }

  /** commits reachable from `head` but not from `base`, oldest first */
  between(repo: Repo, base: string, head: string): Commit[] {
    const exclude = this.ancestors(repo, base);
    const list = [...this.ancestors(repo, head)]
      .filter((s) => !exclude.has(s))
      .map((s) => this.commit(repo, s));
    return list.sort(
      (a, b) => a.committer.date.localeCompare(b.committer.date) || a.sha.localeCompare(b.sha),
    );
  }

  /**
   * File-level three-way merge: a path changed on both sides to different contents is a conflict.
   * Returns the merged tree, or the conflicting paths.
   */
  merge(repo: Repo, ours: string, theirs: string): { files: Map<string, string> } | { conflicts: string[] } {
    const baseSha = this.mergeBase(repo, ours, theirs);
    const base = baseSha ? this.commit(repo, baseSha).files : new Map<string, string>();
    const a = this.commit(repo, ours).files;
    const b = this.commit(repo, theirs).files;
    const out = new Map<string, string>();
    const conflicts: string[] = [];
    for (const path of new Set([...base.keys(), ...a.keys(), ...b.keys()])) {
      const o = base.get(path);
      const x = a.get(path);
      const y = b.get(path);
      let result: string | undefined;
      if (x === y) result = x;
      else if (x === o) result = y;
      else if (y === o) result = x;
      else {
        conflicts.push(path);
        continue;
      }
      if (result !== undefined) out.set(path, result);
    }
    return conflicts.length > 0 ? { conflicts: conflicts.sort() } : { files: out };
  }
}
