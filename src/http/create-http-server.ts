import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

export interface HttpServerOptions {
  log: Logger;
  /** Whether the process can do its job right now (config loaded, Redis reachable). */
  ready(): Promise<{ ok: boolean; reasons: string[] }>;
  /**
   * Extra routes, by "METHOD /path" (adapters and webhooks mount here). A key ending in "/*" matches
   * that path and everything under it, and "*" as the method matches any method (the queue dashboard).
   */
  routes?: Record<string, RouteHandler>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** One HTTP server per process: health, readiness, and whatever the adapters mount. */
export function createHttpServer(options: HttpServerOptions): Server {
  const routes: Record<string, RouteHandler> = {
    "GET /healthz": (_req, res) => send(res, 200, { ok: true }),
    "GET /readyz": async (_req, res) => {
      const state = await options.ready();
      send(res, state.ok ? 200 : 503, state);
    },
    ...options.routes,
  };
  // Prefix routes are few (one per mounted app) and only looked at when no exact route matches.
  const prefixed = Object.entries(routes).flatMap(([key, handler]) => {
    const [method, pattern] = key.split(" ");
    return method && pattern?.endsWith("/*") ? [{ method, base: pattern.slice(0, -2), handler }] : [];
  });
  const findPrefixed = (method: string | undefined, path: string): RouteHandler | undefined =>
    prefixed.find(
      (r) => (r.method === "*" || r.method === method) && (path === r.base || path.startsWith(`${r.base}/`)),
    )?.handler;
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const handler = routes[`${req.method} ${path}`] ?? findPrefixed(req.method, path);
    if (!handler) {
      send(res, 404, { error: "not found" });
      return;
    }
    Promise.resolve(handler(req, res)).catch((error: unknown) => {
      options.log.error({ err: error, path }, "request handler failed");
      if (!res.headersSent) send(res, 500, { error: "internal error" });
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return server;
}
