import { isShipbotError, ShipbotError } from "../core/errors.ts";

/** What shipbot was doing, for a message that helps the person reading it in chat. */
export interface GitHubErrorContext {
  /** e.g. "read commit main", "create a deployment" */
  action: string;
  /** owner/name */
  repo: string;
}

interface HttpFailure {
  status: number;
  message: string | undefined;
  headers: Record<string, string | number | undefined>;
}

/** Octokit's RequestError carries `status` and the response; an abort by the caller is an AbortError. */
function httpFailure(error: unknown): HttpFailure | undefined {
  if (typeof error !== "object" || error === null || !("status" in error)) return undefined;
  const candidate = error as {
    name?: unknown;
    status?: unknown;
    response?: { data?: unknown; headers?: Record<string, string | number | undefined> };
  };
  if (candidate.name === "AbortError" || typeof candidate.status !== "number") return undefined;
  const data = candidate.response?.data;
  const message =
    typeof data === "object" && data !== null && typeof (data as { message?: unknown }).message === "string"
      ? (data as { message: string }).message
      : undefined;
  return { status: candidate.status, message, headers: candidate.response?.headers ?? {} };
}

/** GitHub's own error texts are fit for chat, but can be long; keep the first line, bounded. */
function brief(message: string | undefined): string {
  if (message === undefined) return "";
  const line = message.split("\n")[0]?.trim() ?? "";
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

function isRateLimited(failure: HttpFailure): boolean {
  return (
    failure.status === 429 ||
    (failure.status === 403 &&
      (String(failure.headers["x-ratelimit-remaining"]) === "0" || /rate limit/i.test(failure.message ?? "")))
  );
}

/**
 * The permissions GitHub says the endpoint needs, from `x-accepted-github-permissions` (sent to GitHub Apps
 * and fine-grained tokens): `deployments=write` → "`deployments: write`". Alternative sets are separated by
 * `;` and each one is enough, so they are joined with "or".
 */
function acceptedPermissions(headers: HttpFailure["headers"]): string | undefined {
  const raw = headers["x-accepted-github-permissions"];
  if (typeof raw !== "string") return undefined;
  const sets = raw
    .split(";")
    .map((set) =>
      set
        .split(",")
        .map((permission) => /^\s*([a-z_]+)=([a-z]+)\s*$/.exec(permission))
        .filter((match) => match !== null)
        .map(([, name, level]) => `${name}: ${level}`),
    )
    .filter((set) => set.length > 0)
    .map((set) => `\`${set.join(", ")}\``);
  return sets.length > 0 ? sets.join(" or ") : undefined;
}

/** The HTTP status of a GitHub failure, when it had one. */
export function gitHubStatus(error: unknown): number | undefined {
  return httpFailure(error)?.status;
}

/**
 * Maps any failure of a GitHub call to a ShipbotError, once, at the edge. Messages name the repository and
 * the action and never include request headers (the token lives there); the original stays as `cause`
 * (Octokit's errors redact the authorization header themselves).
 */
export function toGitHubError(error: unknown, context: GitHubErrorContext): ShipbotError {
  if (isShipbotError(error)) return error;
  const where = `${context.action} in ${context.repo}`;
  if (typeof error === "object" && error !== null && (error as { name?: unknown }).name === "AbortError") {
    return new ShipbotError("timeout", `stopped waiting for GitHub (${where}): shipbot was interrupted`, {
      cause: error,
      retryable: true,
    });
  }
  const failure = httpFailure(error);
  if (failure === undefined) {
    return new ShipbotError("upstream", `could not reach GitHub (${where})`, {
      cause: error,
      retryable: true,
    });
  }
  const { status } = failure;
  if (isRateLimited(failure)) {
    const reset = Number(failure.headers["x-ratelimit-reset"]);
    const retryAfter = Number(failure.headers["retry-after"]);
    const when = Number.isFinite(retryAfter)
      ? `in ${retryAfter} s`
      : Number.isFinite(reset) && reset > 0
        ? `after ${new Date(reset * 1000).toISOString().slice(11, 16)} UTC`
        : "later";
    return new ShipbotError(
      "upstream",
      `GitHub's rate limit stopped shipbot (${where}); it gave up waiting, try again ${when}`,
      { cause: error, retryable: true },
    );
  }
  if (status === 401) {
    return new ShipbotError(
      "forbidden",
      `GitHub rejected shipbot's credentials (${where}): check its token or GitHub App installation`,
      { cause: error, retryable: false },
    );
  }
  if (status === 403) {
    // A 403 means GitHub let the credentials see the repository: what is missing is a permission (a 404
    // is what GitHub answers when they cannot see it), so name the permission rather than the repository.
    const permission = acceptedPermissions(failure.headers);
    const detail = brief(failure.message);
    const fix =
      permission === undefined
        ? `give its GitHub App or token the permission this needs${detail ? ` (GitHub said: ${detail})` : ""}`
        : `give its GitHub App or token ${permission} on the repository`;
    return new ShipbotError(
      "forbidden",
      `shipbot's GitHub credentials may not ${context.action} in ${context.repo}: ${fix}`,
      { cause: error, retryable: false },
    );
  }
  if (status === 404) {
    return new ShipbotError(
      "not_found",
      `GitHub found nothing to ${context.action} in ${context.repo}, or shipbot's credentials cannot see the repository`,
      { cause: error, retryable: false },
    );
  }
  if (status === 409) {
    return new ShipbotError(
      "conflict",
      `GitHub refused to ${where} because of a conflict: ${brief(failure.message)}`,
      {
        cause: error,
        retryable: true,
      },
    );
  }
  if (status === 400 || status === 405 || status === 422) {
    const detail = brief(failure.message);
    return new ShipbotError("upstream", `GitHub refused to ${where}${detail ? `: ${detail}` : ""}`, {
      cause: error,
      retryable: false,
    });
  }
  if (status >= 500) {
    return new ShipbotError(
      "upstream",
      `GitHub is failing (HTTP ${status}) and kept failing after retries (${where}); nothing more was attempted`,
      { cause: error, retryable: true },
    );
  }
  return new ShipbotError("upstream", `GitHub answered HTTP ${status} (${where})`, {
    cause: error,
    retryable: false,
  });
}
