/**
 * The GitHub client's retry, throttling and authentication, through the real Octokit against the emulator.
 */
import { createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isShipbotError, type ShipbotError } from "../../src/core/errors.ts";
import {
  createGitHubClient,
  type GitHubClientOptions,
  resolveRef,
  startDeployment,
  toGitHubError,
} from "../../src/github/index.ts";
import { type GitHubEmulator, startGitHubEmulator } from "../emulators/github/index.ts";

const REPO = { owner: "acme", repo: "api" };
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let gh: GitHubEmulator;

function client(overrides: Partial<GitHubClientOptions> = {}, emulator = gh) {
  return createGitHubClient({
    auth: { kind: "token", token: "ghp_test" },
    baseUrl: emulator.url,
    backoffUnitMs: 1,
    writeSpacingMs: 0,
    notifySpacingMs: 0,
    log: quiet,
    ...overrides,
  });
}

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
  gh.createRepo("acme/api");
});

afterEach(async () => {
  await gh.close();
});

describe("retries", () => {
  it("retries 5xx a bounded number of times, then fails with a clear upstream error", async () => {
    gh.failNext({ path: /\/commits\// }, 502, 2);
    const resolved = await resolveRef(client(), REPO, "main");
    expect(resolved.sha).toMatch(/^[0-9a-f]{40}$/);

    const before = gh.requests().length;
    gh.failNext({ path: /\/commits\// }, 500, 50);
    const error = await rejection(resolveRef(client({ retries: 2 }), REPO, "main"));
    expect(error.code).toBe("upstream");
    expect(error.retryable).toBe(true);
    expect(error.message).toBe(
      "GitHub is failing (HTTP 500) and kept failing after retries (read ref main in acme/api); nothing more was attempted",
    );
    expect(
      gh
        .requests()
        .slice(before)
        .map((r) => r.status),
    ).toEqual([500, 500, 500]);
  });

  it("does not retry answers that retrying cannot change", async () => {
    const error = await rejection(resolveRef(client(), { owner: "acme", repo: "ghost" }, "main"));
    expect(error.code).toBe("not_found");
    expect(gh.requests()).toHaveLength(1);
  });

  it("waits out a short secondary rate limit and gives up on a long one", async () => {
    const short = await startGitHubEmulator({ retryAfterSeconds: 2 });
    const long = await startGitHubEmulator({ retryAfterSeconds: 3600 });
    try {
      for (const e of [short, long]) {
        e.createRepo("acme/api");
        e.failNext({ path: /\/commits\// }, 429);
      }
      await resolveRef(client({}, short), REPO, "main");
      expect(short.requests().map((r) => r.status)).toEqual([429, 200, 404]); // the 404: "main" is no tag

      const error = await rejection(resolveRef(client({ maxRateLimitWaitSeconds: 60 }, long), REPO, "main"));
      expect(error.code).toBe("upstream");
      expect(error.message).toBe(
        "GitHub's rate limit stopped shipbot (read ref main in acme/api); it gave up waiting, try again in 3600 s",
      );
      expect(long.requests()).toHaveLength(1);
    } finally {
      await short.close();
      await long.close();
    }
  });

  it("maps an exhausted primary limit and bad credentials without leaking the token", async () => {
    const tiny = await startGitHubEmulator({ rateLimit: 1 });
    try {
      tiny.createRepo("acme/api");
      const error = await rejection(resolveRef(client({}, tiny), REPO, "main"));
      // One request for the commit, the tag lookup then hits the limit whose reset is an hour away.
      expect(error.code).toBe("upstream");
      expect(error.message).toMatch(/^GitHub's rate limit stopped shipbot \(read tag main in acme\/api\)/);
    } finally {
      await tiny.close();
    }
    const denied = await rejection(
      resolveRef(client({ auth: { kind: "token", token: "ghp_secret_value" } }), REPO, "main"),
    );
    expect(denied.code).toBe("forbidden");
    expect(denied.message).not.toContain("ghp_secret_value");
    expect(JSON.stringify(denied.cause)).not.toContain("ghp_secret_value");
  });

  it("stops waiting out a rate limit as soon as the job's signal fires", async () => {
    // Retry-After 50 at 100 ms a second: a 5 s wait, well within maxRateLimitWaitSeconds.
    const limited = await startGitHubEmulator({ retryAfterSeconds: 50 });
    try {
      limited.createRepo("acme/api");
      limited.failNext({ path: /\/commits\// }, 429);
      const job = new AbortController();
      setTimeout(() => job.abort(), 50);
      const started = Date.now();
      const error = await rejection(
        resolveRef(client({ backoffUnitMs: 100 }, limited), REPO, "main", { signal: job.signal }),
      );
      expect(error.code).toBe("timeout");
      expect(error.message).toBe(
        "stopped waiting for GitHub (read ref main in acme/api): shipbot was interrupted",
      );
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(limited.requests().map((r) => r.status)).toEqual([429]);
    } finally {
      await limited.close();
    }
  });

  it("passes an abort through as an interruption, not a retry", async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await rejection(resolveRef(client(), REPO, "main", { signal: controller.signal }));
    expect(error.code).toBe("timeout");
    expect(gh.requests()).toHaveLength(0);
    expect(toGitHubError(new Error("boom"), { action: "x", repo: "acme/api" }).message).toBe(
      "could not reach GitHub (x in acme/api)",
    );
  });
});

describe("missing permissions", () => {
  /**
   * The emulator answers every 403 as a rate limit; this transport answers deployment creation as GitHub
   * does for an App installed without `deployments: write`, and forwards the rest.
   */
  function withoutPermission(accepted: string | undefined): typeof fetch {
    return async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.pathname === "/repos/acme/api/deployments" && init?.method === "POST") {
        const body = {
          message: "Resource not accessible by integration",
          documentation_url: "https://docs.github.com/rest/deployments/deployments#create-a-deployment",
          status: "403",
        };
        return new Response(JSON.stringify(body), {
          status: 403,
          headers: {
            "content-type": "application/json",
            "x-ratelimit-remaining": "4999",
            ...(accepted === undefined ? {} : { "x-accepted-github-permissions": accepted }),
          },
        });
      }
      return fetch(input, init);
    };
  }

  it("names the permission GitHub says is missing, and the repository", async () => {
    const sha = (await resolveRef(client(), REPO, "main")).sha;
    const deploy = (accepted?: string) =>
      rejection(
        startDeployment(client({ fetch: withoutPermission(accepted) }), {
          repo: REPO,
          sha,
          environment: "production",
          jobId: "j-1",
        }),
      );

    const error = await deploy("deployments=write");
    expect(error.code).toBe("forbidden");
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      "shipbot's GitHub credentials may not create a deployment to production in acme/api: give its GitHub App or token `deployments: write` on the repository",
    );
    expect((await deploy("deployments=write; contents=write,statuses=read")).message).toMatch(
      /: give its GitHub App or token `deployments: write` or `contents: write, statuses: read` on the repository$/,
    );
    // Without the header (classic tokens), GitHub's own words say what is missing.
    expect((await deploy()).message).toBe(
      "shipbot's GitHub credentials may not create a deployment to production in acme/api: give its GitHub App or token the permission this needs (GitHub said: Resource not accessible by integration)",
    );
  });
});

describe("GitHub Enterprise Server and GitHub App authentication", () => {
  it("talks to a /api/v3 base URL", async () => {
    const resolved = await resolveRef(client({ baseUrl: `${gh.url}/api/v3/` }), REPO, "main");
    expect(resolved.kind).toBe("branch");
    expect(gh.requests()[0]?.path).toMatch(/^\/api\/v3\/repos\/acme\/api\/commits\/main$/);
  });

  it("signs a JWT with the App key, exchanges it for an installation token and reuses it", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const exchanges: Array<{ iss: unknown; valid: boolean }> = [];
    // The emulator has no App endpoints; this transport answers the token exchange and forwards the rest.
    const transport: typeof fetch = async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.pathname === "/app/installations/77/access_tokens" && init?.method === "POST") {
        const jwt = String(new Headers(init.headers).get("authorization")).replace(/^bearer /i, "");
        const [header, payload, signature] = jwt.split(".");
        const valid = verify(
          "sha256",
          Buffer.from(`${header}.${payload}`),
          createPublicKey(publicKey),
          Buffer.from(signature ?? "", "base64url"),
        );
        exchanges.push({ iss: JSON.parse(Buffer.from(payload ?? "", "base64url").toString()).iss, valid });
        const body = {
          token: "ghp_test",
          expires_at: new Date(Date.now() + 3600_000).toISOString(),
          permissions: {},
        };
        return new Response(JSON.stringify(body), {
          status: 201,
          headers: { "content-type": "application/json" },
        });
      }
      return fetch(input, init);
    };
    const app = client({
      auth: { kind: "app", appId: 1234, privateKey, installationId: 77 },
      fetch: transport,
    });
    await resolveRef(app, REPO, "main");
    await resolveRef(app, REPO, "main");
    expect(exchanges).toEqual([{ iss: 1234, valid: true }]);
    expect(gh.requests().every((r) => r.status === 200 || r.status === 404)).toBe(true);
  });
});
