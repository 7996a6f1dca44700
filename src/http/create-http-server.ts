import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

export interface HttpServerOptions {
  log: Logger;
  /** Whether the process can do its job right now (config loaded, Redis reachable). */
  ready(): Promise<{ ok: boolean; reasons: string[] }>;
  /** Extra routes, by "METHOD /path" (adapters and webhooks mount here). */
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
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const handler = routes[`${req.method} ${path}`];
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
