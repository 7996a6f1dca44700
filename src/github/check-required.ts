import { ShipbotError } from "../core/errors.ts";
import type { GitHubClient } from "./create-github-client.ts";
import { formatRepo, type RepoRef } from "./repo-ref.ts";
import { toGitHubError } from "./to-github-error.ts";

export interface CheckRequiredOptions {
  /**
   * Names that must be green: each is matched against commit status contexts and check-run names (a name
   * reported both ways must be green both ways). Empty: nothing is required and no request is made.
   */
  required: readonly string[];
  /** Report instead of throwing when something is red or pending; for callers whose policy allows it. */
  force?: boolean;
  signal?: AbortSignal;
}

export type CheckState = "success" | "failure" | "pending" | "missing";

export interface CheckResult {
  name: string;
  state: CheckState;
  /** "status" for a commit status context, "check" for a check run, "none" when nothing reported it. */
  source: "status" | "check" | "none";
  url?: string;
}

export interface RequiredChecksReport {
  sha: string;
  ok: boolean;
  /** True when something was not green and `force` let it through. */
  forced: boolean;
  checks: CheckResult[];
}

const greenConclusions = new Set(["success", "neutral", "skipped"]);

function statusState(state: string): CheckState {
  if (state === "success") return "success";
  if (state === "pending") return "pending";
  return "failure";
}

function describe(check: CheckResult): string {
  const what =
    check.state === "failure" ? "failed" : check.state === "missing" ? "has not reported" : "is pending";
  return `${check.name} ${what}${check.url ? ` (${check.url})` : ""}`;
}

/**
 * Makes sure the listed status contexts and check runs are green on `sha`. Red or pending throws a
 * conflict that names each offending check with its link; red is final, pending may pass later (retryable).
 */
export async function checkRequired(
  github: GitHubClient,
  repo: RepoRef,
  sha: string,
  options: CheckRequiredOptions,
): Promise<RequiredChecksReport> {
  const required = [...new Set(options.required)];
  if (required.length === 0) return { sha, ok: true, forced: false, checks: [] };
  const full = formatRepo(repo);
  const request = options.signal === undefined ? {} : { request: { signal: options.signal } };
  const wanted = new Set(required);

  const statuses = new Map<string, { state: string; url: string | null }>();
  const runs = new Map<string, { status: string; conclusion: string | null; url: string | null }>();
  try {
    // Newest first: the first status seen per context is its current one. Stop once all are known.
    await github.paginate(
      github.rest.repos.listCommitStatusesForRef,
      { ...repo, ref: sha, per_page: 100, ...request },
      (response, done) => {
        for (const s of response.data) {
          if (s.context && !statuses.has(s.context))
            statuses.set(s.context, { state: s.state, url: s.target_url });
        }
        if (required.every((name) => statuses.has(name))) done();
        return [];
      },
    );
    // filter=latest (the default) gives the newest run of each name.
    await github.paginate(
      github.rest.checks.listForRef,
      { ...repo, ref: sha, per_page: 100, ...request },
      (response) => {
        for (const run of response.data) {
          if (wanted.has(run.name) && !runs.has(run.name)) {
            runs.set(run.name, {
              status: run.status,
              conclusion: run.conclusion,
              url: run.details_url ?? run.html_url,
            });
          }
        }
        return [];
      },
    );
  } catch (error) {
    throw toGitHubError(error, { action: `read the checks of ${sha.slice(0, 7)}`, repo: full });
  }

  const checks: CheckResult[] = [];
  for (const name of required) {
    const status = statuses.get(name);
    const run = runs.get(name);
    if (status) {
      checks.push({
        name,
        state: statusState(status.state),
        source: "status",
        ...(status.url ? { url: status.url } : {}),
      });
    }
    if (run) {
      const state: CheckState =
        run.status !== "completed"
          ? "pending"
          : greenConclusions.has(run.conclusion ?? "")
            ? "success"
            : "failure";
      checks.push({ name, state, source: "check", ...(run.url ? { url: run.url } : {}) });
    }
    if (!status && !run) checks.push({ name, state: "missing", source: "none" });
  }

  const failing = checks.filter((c) => c.state === "failure");
  const waiting = checks.filter((c) => c.state === "pending" || c.state === "missing");
  const ok = failing.length === 0 && waiting.length === 0;
  if (ok || options.force === true) return { sha, ok, forced: !ok, checks };

  const parts = [...failing, ...waiting].map(describe);
  throw new ShipbotError(
    "conflict",
    `required checks are not green on ${sha.slice(0, 7)} in ${full}: ${parts.join("; ")}`,
    {
      // Red stays red; pending or missing checks may pass later.
      retryable: failing.length === 0,
      hint:
        failing.length === 0
          ? "wait for the checks to finish, then deploy again"
          : "fix the failing checks (or re-run them), then deploy again",
    },
  );
}
