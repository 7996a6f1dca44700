import type { Registry } from "prom-client";
import type { RouteHandler } from "./create-http-server.ts";

/**
 * `GET /metrics` in Prometheus' text exposition format. Mount it with
 * `createHttpServer({ routes: { "GET /metrics": createMetricsRoute(metrics.registry) } })`.
 * Collecting can fail (a collector's bug); the error goes to the server's one handler, which logs it
 * and answers 500, and Prometheus then marks the target down for that scrape.
 */
export function createMetricsRoute(registry: Registry): RouteHandler {
  return async (_req, res) => {
    const body = await registry.metrics();
    res.writeHead(200, {
      "content-type": registry.contentType,
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
    });
    res.end(body);
  };
}
