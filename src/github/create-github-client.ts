import { createAppAuth } from "@octokit/auth-app";
import { retry } from "@octokit/plugin-retry";
import { type ThrottlingOptions, throttling } from "@octokit/plugin-throttling";
import { Octokit } from "@octokit/rest";

/** A personal or fine-grained access token, or a GitHub App installation (preferred: scoped, short-lived tokens). */
export type GitHubAuth =
  | { kind: "token"; token: string }
  | {
      kind: "app";
      appId: number | string;
      /** PEM, PKCS#1 or PKCS#8, as GitHub hands it out. */
      privateKey: string;
      installationId: number | string;
    };

export interface GitHubLog {
  debug(message: string, ...rest: unknown[]): void;
  info(message: string, ...rest: unknown[]): void;
  warn(message: string, ...rest: unknown[]): void;
  error(message: string, ...rest: unknown[]): void;
}

export interface GitHubClientOptions {
  auth: GitHubAuth;
  /** REST API root, default https://api.github.com; GitHub Enterprise Server: https://HOST/api/v3 (GITHUB_API_URL). */
  baseUrl?: string;
  userAgent?: string;
  /** Retries of a request that failed with 5xx or got no answer; default 3. */
  retries?: number;
  /** Longest Retry-After or rate-limit reset shipbot waits for before failing; default 60 s. */
  maxRateLimitWaitSeconds?: number;
  /** Retries after hitting a rate limit, per request; default 2. */
  rateLimitRetries?: number;
  /**
   * How long one second of backoff lasts, in ms: retries wait 1, 4, 9 units and rate limits their
   * Retry-After in units. Default 1000; tests shrink it.
   */
  backoffUnitMs?: number;
  /** Minimum gap between mutating requests, which GitHub asks integrators to keep; default 1000 ms. */
  writeSpacingMs?: number;
  /** Minimum gap between writes that notify people (pull requests, merges, comments); default 3000 ms. */
  notifySpacingMs?: number;
  /** Each request (not each retry series) gives up after this long; default 20 s. */
  requestTimeoutMs?: number;
  log?: GitHubLog;
  /** The transport; tests inject one to observe or fake endpoints the emulator lacks. */
  fetch?: typeof fetch;
}

/** What a request ends with when its caller's signal fires; `toGitHubError` reads the name as an interruption. */
function interrupted(signal: AbortSignal): Error {
  const error = new Error("the caller stopped waiting for GitHub", { cause: signal.reason });
  error.name = "AbortError";
  return error;
}

/**
 * Ends a request the moment its caller's signal fires. The retry and throttling plugins wait between
 * attempts in timers the signal does not reach (a Retry-After may last a minute, and is waited out twice),
 * so without this a cancelled or timed-out job would sit out the whole wait and only then fail. Registered
 * last, so it wraps both plugins; an attempt still under way is aborted by fetch itself.
 */
function stopOnAbort(octokit: Pick<Octokit, "hook">): void {
  octokit.hook.wrap("request", (request, options) => {
    const signal = options.request?.signal;
    if (signal === undefined) return request(options);
    if (signal.aborted) return Promise.reject(interrupted(signal));
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(interrupted(signal));
      signal.addEventListener("abort", onAbort, { once: true });
      Promise.resolve(request(options))
        .then(resolve, reject)
        .finally(() => signal.removeEventListener("abort", onAbort));
    });
  });
}

const ShipbotOctokit = Octokit.plugin(retry, throttling, stopOnAbort);

/** The Octokit that shipbot's GitHub functions take: @octokit/rest with retry and throttling. */
export type GitHubClient = Octokit;

/** Statuses that retrying cannot fix (409 and 405 are answers about state; 429/403 belong to throttling). */
const doNotRetry = [400, 401, 403, 404, 405, 409, 410, 422, 429, 451];

const quietLog: GitHubLog = {
  debug: () => {},
  info: () => {},
  warn: (message, ...rest) => console.warn(message, ...rest),
  error: (message, ...rest) => console.error(message, ...rest),
};

type WriteGroup = NonNullable<Extract<ThrottlingOptions, { onRateLimit: unknown }>["write"]>;

/**
 * Keeps `spacingMs` between writes. Stands in for the throttling plugin's own write and notification groups
 * (fixed gaps, shared by every client in the process) so the spacing is a setting; the plugin only calls
 * `key(id).schedule(options, fn)` on it.
 */
function spacedWrites(spacingMs: number): WriteGroup {
  let gate: Promise<void> = Promise.resolve();
  let last = 0;
  const limiter = {
    schedule<T>(_options: unknown, fn: () => Promise<T> | T): Promise<T> {
      const turn = gate.then(async () => {
        const wait = last + spacingMs - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        last = Date.now();
      });
      gate = turn.catch(() => {});
      return turn.then(() => fn());
    },
  };
  // Cast: the plugin types the group as Bottleneck's, of which it uses only the part above.
  return { key: () => limiter } as unknown as WriteGroup;
}

/** Bounds each request by a timeout while keeping the caller's abort signal. */
function boundedFetch(base: typeof fetch, timeoutMs: number): typeof fetch {
  return (input, init) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return base(input, { ...init, signal });
  };
}

/**
 * An Octokit for shipbot: retries 5xx and dropped connections a bounded number of times, waits out
 * secondary and primary rate limits only while the wait is short, spaces writes, and authenticates with a
 * token or as a GitHub App installation (installation tokens are minted and renewed by the auth strategy).
 * Failures still reach the caller as Octokit errors; map them with `toGitHubError`.
 */
export function createGitHubClient(options: GitHubClientOptions): GitHubClient {
  const unit = options.backoffUnitMs ?? 1000;
  const maxWait = options.maxRateLimitWaitSeconds ?? 60;
  const rateLimitRetries = options.rateLimitRetries ?? 2;
  const log = options.log ?? quietLog;
  const onLimit =
    (kind: string) =>
    (
      retryAfter: number,
      request: { method?: string; url?: string },
      _octokit: unknown,
      retryCount: number,
    ) => {
      const retrying = retryCount < rateLimitRetries && retryAfter <= maxWait;
      log.warn(
        `GitHub ${kind} rate limit on ${request.method ?? ""} ${request.url ?? ""}; ${retrying ? `retrying in ${retryAfter} s` : "giving up"}`,
      );
      return retrying;
    };

  const auth =
    options.auth.kind === "token"
      ? { auth: options.auth.token }
      : {
          authStrategy: createAppAuth,
          auth: {
            appId: options.auth.appId,
            privateKey: options.auth.privateKey,
            installationId: options.auth.installationId,
          },
        };

  return new ShipbotOctokit({
    ...auth,
    ...(options.baseUrl === undefined ? {} : { baseUrl: options.baseUrl.replace(/\/+$/, "") }),
    userAgent: options.userAgent ?? "shipbot",
    log,
    request: {
      fetch: boundedFetch(options.fetch ?? globalThis.fetch, options.requestTimeoutMs ?? 20_000),
    },
    retry: { retries: options.retries ?? 3, retryAfterBaseValue: unit, doNotRetry },
    throttle: {
      retryAfterBaseValue: unit,
      fallbackSecondaryRateRetryAfter: 60,
      onRateLimit: onLimit("primary"),
      onSecondaryRateLimit: onLimit("secondary"),
      ...(options.writeSpacingMs === undefined ? {} : { write: spacedWrites(options.writeSpacingMs) }),
      ...(options.notifySpacingMs === undefined
        ? {}
        : { notifications: spacedWrites(options.notifySpacingMs) }),
    },
  });
}
