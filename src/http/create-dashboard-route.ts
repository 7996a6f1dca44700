import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Queue } from "bullmq";
import type { RouteHandler } from "./create-http-server.ts";

/** Credentials for the dashboard; at least one of `token` and `password` must be set. */
export interface DashboardAuth {
  /** Accepted as `Authorization: Bearer <token>` (scripts, an authenticating proxy). */
  token?: string;
  /** Accepted as HTTP basic auth (browsers prompt for it); the user name defaults to "admin". */
  username?: string;
  password?: string;
}

export interface DashboardOptions {
  queues: Array<{ queue: Queue; displayName: string }>;
  auth: DashboardAuth;
  /** Where it is mounted; default /admin/queues. */
  basePath?: string;
  title?: string;
}

export interface DashboardRoute {
  basePath: string;
  /** Handles every request under `basePath` (any method; all but GET and HEAD are refused). */
  handler: RouteHandler;
  /** The handler keyed for `createHttpServer({ routes })`: any method, any path under `basePath`. */
  routes: Record<string, RouteHandler>;
}

type ExpressApp = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;

/** Hashing first gives both sides one length, so the comparison time says nothing about the secret. */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

function isAuthorized(header: string | undefined, auth: DashboardAuth): boolean {
  if (header === undefined) return false;
  const space = header.indexOf(" ");
  if (space < 0) return false;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === "bearer" && auth.token) return sameSecret(value, auth.token);
  if (scheme === "basic" && auth.password) {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return false;
    // Both parts are always compared, so a wrong user name takes as long as a wrong password.
    const userOk = sameSecret(decoded.slice(0, colon), auth.username ?? "admin");
    const passwordOk = sameSecret(decoded.slice(colon + 1), auth.password);
    return userOk && passwordOk;
  }
  return false;
}

function refuse(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

/**
 * The queue dashboard (bull-board), read-only and behind authentication. Read-only twice over: the
 * queues are registered in bull-board's read-only mode, and this handler refuses every method but GET
 * and HEAD before bull-board sees the request, because retry, promote or clean buttons would be a
 * second way to start deploys, one that skips chat's permission checks and audit. It is built only when
 * credentials are configured; without them the composition root mounts nothing.
 */
export function createDashboardRoute(options: DashboardOptions): DashboardRoute {
  const { auth } = options;
  if (!auth.token && !auth.password) throw new Error("the queue dashboard needs a token or a password");
  const basePath = (options.basePath ?? "/admin/queues").replace(/\/+$/, "");
  const adapter = new ExpressAdapter();
  adapter.setBasePath(basePath);
  createBullBoard({
    queues: options.queues.map(
      ({ queue, displayName }) => new BullMQAdapter(queue, { readOnlyMode: true, displayName }),
    ),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: options.title ?? "shipbot queues" } },
  });
  const app = adapter.getRouter() as ExpressApp;
  const challenge = auth.password
    ? 'Basic realm="shipbot dashboard", charset="UTF-8"'
    : 'Bearer realm="shipbot dashboard"';

  const handler: RouteHandler = (req, res) => {
    const url = req.url ?? "/";
    const path = url.split("?")[0] ?? "/";
    if (path !== basePath && !path.startsWith(`${basePath}/`)) {
      refuse(res, 404, "not found");
      return;
    }
    if (!isAuthorized(req.headers.authorization, auth)) {
      refuse(res, 401, "authentication required", { "www-authenticate": challenge });
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      refuse(res, 405, "the queue dashboard is read-only", { allow: "GET, HEAD" });
      return;
    }
    return new Promise<void>((resolve, reject) => {
      res.once("finish", resolve);
      res.once("close", resolve);
      // bull-board's app routes relative to where it is mounted.
      req.url = url.slice(basePath.length) || "/";
      app(req, res, (error?: unknown) => {
        if (error) reject(error);
        else refuse(res, 404, "not found");
      });
    });
  };
  return { basePath, handler, routes: { [`* ${basePath}/*`]: handler } };
}
