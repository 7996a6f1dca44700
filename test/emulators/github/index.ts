// GitHub REST emulator: a loopback HTTP server the real Octokit client talks to (`baseUrl: url`),
// backed by an in-memory repository model with a small seeding API for tests.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { CheckRun } from "./model.ts";
import { Store } from "./model.ts";
import { user } from "./render.ts";
import { addStatus, type Ctx, fail, type Reply, route } from "./routes.ts";

export interface GitHubEmulatorOptions {
  host?: string;
  port?: number;
  /** accepted token, default "ghp_test"; requests without `authorization: token|Bearer <it>` get 401 */
  token?: string;
  /** primary rate limit in requests per hour per token, default 5000 */
  rateLimit?: number;
  /** `retry-after` seconds sent with injected 403/429 secondary-limit answers, default 60 */
  retryAfterSeconds?: number;
  /** login the token belongs to (creator of statuses, deployments, pulls), default "shipbot" */
  login?: string;
  /**
   * Whether a success status also inactivates earlier production deployments. GitHub's reference
   * text says only non-production ones are; the 2018 deployments update extended it to production.
   * Default true; set false for the strict reading.
   */
  autoInactiveProduction?: boolean;
}

export interface EmulatedDeployment {
  id: number;
  ref: string;
  sha: string;
  environment: string;
  payload: unknown;
  statuses: Array<{ state: string; environment_url?: string; log_url?: string; description?: string }>;
}

export interface GitHubEmulator {
  url: string;
  /** create a repo with a default branch "main" and an initial commit */
  createRepo(fullName: string, files?: Record<string, string>): void;
  /** add a commit on a branch (created from the default branch if missing); returns its 40-hex sha */
  commit(
    fullName: string,
    branch: string,
    message: string,
    options?: {
      author?: { name: string; email: string; login?: string };
      files?: Record<string, string>;
      date?: string;
    },
  ): string;
  /** lightweight tag on a commit (sha, abbreviation or branch) */
  tag(fullName: string, tag: string, sha: string): void;
  setStatus(
    fullName: string,
    sha: string,
    context: string,
    state: "success" | "failure" | "pending" | "error",
    targetUrl?: string,
  ): void;
  setCheckRun(
    fullName: string,
    sha: string,
    name: string,
    status: "queued" | "in_progress" | "completed",
    conclusion?: "success" | "failure" | "neutral" | "cancelled" | "timed_out" | "skipped",
  ): void;
  file(fullName: string, branch: string, path: string): string | undefined;
  /** oldest first, each with its statuses oldest first */
  deployments(fullName: string): EmulatedDeployment[];
  pulls(
    fullName: string,
  ): Array<{ number: number; head: string; base: string; state: string; merged: boolean }>;
  /** the next `count` (default 1) requests matching get `status` instead of their normal answer */
  failNext(match: { method?: string; path?: RegExp }, status: number, count?: number): void;
  requests(): Array<{ method: string; path: string; status: number }>;
  close(): Promise<void>;
}

interface Fault {
  method?: string;
  path?: RegExp;
  status: number;
  remaining: number;
}

interface Bucket {
  limit: number;
  used: number;
  reset: number;
}

const HOUR = 3600;
const MAX_BODY = 10 * 1024 * 1024;

const FAULT_MESSAGES: Record<number, string> = {
  400: "Bad Request",
  401: "Bad credentials",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  422: "Validation Failed",
  500: "Server Error",
  502: "Server Error",
  503: "Service Unavailable",
  504: "We couldn't respond to your request in time. Sorry about that. Please try resubmitting your request and contact us if the problem persists.",
};

const SECONDARY =
  "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

export async function startGitHubEmulator(options: GitHubEmulatorOptions = {}): Promise<GitHubEmulator> {
  const token = options.token ?? "ghp_test";
  const login = options.login ?? "shipbot";
  const limit = options.rateLimit ?? 5000;
  const retryAfter = options.retryAfterSeconds ?? 60;
  const store = new Store();
  const faults: Fault[] = [];
  const log: Array<{ method: string; path: string; status: number }> = [];
  const buckets = new Map<string, Bucket>();
  let base = "";
  let requestSeq = 0;

  const bucket = (key: string, size: number): Bucket => {
    const nowSec = Math.floor(Date.now() / 1000);
    let b = buckets.get(key);
    if (!b || b.reset <= nowSec) {
      b = { limit: size, used: 0, reset: nowSec + HOUR };
      buckets.set(key, b);
    }
    return b;
  };

  const send = (res: ServerResponse, reply: Reply, b: Bucket) => {
    const headers: Record<string, string> = {
      "x-ratelimit-limit": String(b.limit),
      "x-ratelimit-remaining": String(Math.max(0, b.limit - b.used)),
      "x-ratelimit-reset": String(b.reset),
      "x-ratelimit-used": String(b.used),
      "x-ratelimit-resource": "core",
      "x-github-api-version-selected": "2022-11-28",
      "x-github-media-type": "github.v3; format=json",
      "x-github-request-id": `EMU:${(++requestSeq).toString(16).toUpperCase().padStart(6, "0")}`,
      ...reply.headers,
    };
    if (reply.body === undefined || reply.status === 204) {
      res.writeHead(reply.status, headers).end();
      return;
    }
    res.writeHead(reply.status, { ...headers, "content-type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(reply.body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    const method = (req.method ?? "GET").toUpperCase();
    const url = new URL(req.url ?? "/", "http://emulator");
    // GitHub Enterprise Server serves the same API under /api/v3.
    const pathname = url.pathname.replace(/^\/api\/v3(?=\/)/, "");
    const raw = await readBody(req);

    const auth = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    if (!auth || auth[1] !== token) {
      // Unauthenticated callers share GitHub's per-IP budget of 60 requests an hour.
      const b = bucket("anonymous", 60);
      b.used = Math.min(b.limit, b.used + 1);
      const message = auth ? "Bad credentials" : "Requires authentication";
      send(res, fail(401, message, "/overview/resources-in-the-rest-api#authentication"), b);
      return 401;
    }

    const b = bucket(`token:${auth[1]}`, limit);
    if (pathname === "/rate_limit") {
      // Reading the rate limit does not count against it.
      const core = { limit: b.limit, used: b.used, remaining: b.limit - b.used, reset: b.reset };
      send(res, { status: 200, body: { resources: { core }, rate: core } }, b);
      return 200;
    }
    if (b.used >= b.limit) {
      const reply = fail(
        403,
        `API rate limit exceeded for user ID ${user(base, login).id}.`,
        "/overview/rate-limits-for-the-rest-api",
      );
      send(res, reply, b);
      return 403;
    }
    b.used += 1;

    const fault = faults.find(
      (f) => f.remaining > 0 && (!f.method || f.method === method) && (!f.path || f.path.test(pathname)),
    );
    if (fault) {
      fault.remaining -= 1;
      const secondary = fault.status === 429 || fault.status === 403;
      const reply = fail(
        fault.status,
        secondary ? SECONDARY : (FAULT_MESSAGES[fault.status] ?? "Server Error"),
        secondary ? "/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits" : "",
      );
      if (secondary) reply.headers = { "retry-after": String(retryAfter) };
      send(res, reply, b);
      return fault.status;
    }

    let body: Record<string, unknown> = {};
    if (raw.length > 0) {
      try {
        const parsed: unknown = JSON.parse(raw.toString("utf8"));
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
          body = parsed as Record<string, unknown>;
      } catch {
        send(res, fail(400, "Problems parsing JSON", ""), b);
        return 400;
      }
    }
    let segments: string[];
    try {
      segments = pathname.split("/").filter(Boolean).map(decodeURIComponent);
    } catch {
      send(res, fail(404, "Not Found", ""), b);
      return 404;
    }
    const ctx: Ctx = {
      method,
      segments,
      query: url.searchParams,
      body,
      base,
      store,
      login,
      autoInactiveProduction: options.autoInactiveProduction ?? true,
      now: () => new Date().toISOString(),
    };
    const reply = route(ctx);
    send(res, reply, b);
    return reply.status;
  };

  const server = createServer((req, res) => {
    const method = (req.method ?? "GET").toUpperCase();
    const path = new URL(req.url ?? "/", "http://emulator").pathname;
    handle(req, res)
      .then((status) => log.push({ method, path, status }))
      .catch((err: unknown) => {
        log.push({ method, path, status: 500 });
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify({ message: `emulator error: ${String(err)}` }));
      });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  base = `http://${host}:${address.port}`;

  const mustResolve = (fullName: string, ref: string) => {
    const repo = store.mustRepo(fullName);
    const resolved = store.resolve(repo, ref);
    if (!resolved) throw new Error(`github emulator: ${ref} does not resolve in ${fullName}`);
    return { repo, sha: resolved.sha };
  };

  return {
    url: base,
    createRepo(fullName, files) {
      store.createRepo(fullName, files);
    },
    commit(fullName, branch, message, opts = {}) {
      const repo = store.mustRepo(fullName);
      const parent = repo.branches.get(branch) ?? repo.branches.get(repo.defaultBranch);
      if (!parent) throw new Error(`github emulator: no branch ${branch} in ${fullName}`);
      const files = new Map(store.commit(repo, parent).files);
      for (const [path, content] of Object.entries(opts.files ?? {})) files.set(path, content);
      const author = opts.author ?? { name: "Octo Cat", email: "octocat@example.com", login: "octocat" };
      const commit = store.addCommit(repo, {
        parents: [parent],
        message,
        files,
        author: { ...author, date: opts.date ?? store.seededDate() },
      });
      repo.branches.set(branch, commit.sha);
      return commit.sha;
    },
    tag(fullName, tag, sha) {
      const { repo, sha: target } = mustResolve(fullName, sha);
      repo.tags.set(tag, target);
    },
    setStatus(fullName, sha, context, state, targetUrl) {
      const { repo, sha: target } = mustResolve(fullName, sha);
      addStatus(store, repo, target, {
        state,
        context,
        targetUrl: targetUrl ?? null,
        description: null,
        createdAt: new Date().toISOString(),
      });
    },
    setCheckRun(fullName, sha, name, status, conclusion) {
      const { repo, sha: target } = mustResolve(fullName, sha);
      const now = new Date().toISOString();
      const run: CheckRun = {
        id: store.nextId(),
        name,
        headSha: target,
        status,
        conclusion: status === "completed" ? (conclusion ?? "success") : null,
        startedAt: now,
        completedAt: status === "completed" ? now : null,
      };
      const list = repo.checkRuns.get(target) ?? [];
      list.push(run);
      repo.checkRuns.set(target, list);
    },
    file(fullName, branch, path) {
      const repo = store.mustRepo(fullName);
      const sha = repo.branches.get(branch);
      return sha ? store.commit(repo, sha).files.get(path) : undefined;
    },
    deployments(fullName) {
      return store.mustRepo(fullName).deployments.map((d) => ({
        id: d.id,
        ref: d.ref,
        sha: d.sha,
        environment: d.environment,
        payload: d.payload,
        statuses: d.statuses.map((s) => ({
          state: s.state,
          ...(s.environmentUrl ? { environment_url: s.environmentUrl } : {}),
          ...(s.logUrl ? { log_url: s.logUrl } : {}),
          ...(s.description ? { description: s.description } : {}),
        })),
      }));
    },
    pulls(fullName) {
      return store.mustRepo(fullName).pulls.map((p) => ({
        number: p.number,
        head: p.head,
        base: p.base,
        state: p.state,
        merged: p.merged,
      }));
    },
    failNext(match, status, count = 1) {
      faults.push({
        ...(match.method ? { method: match.method.toUpperCase() } : {}),
        ...(match.path ? { path: match.path } : {}),
        status,
        remaining: count,
      });
    },
    requests() {
      return log.map((r) => ({ ...r }));
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
