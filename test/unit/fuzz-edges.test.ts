import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { createAlertsRoute } from "../../src/alerts/index.ts";
import { ConfigError, parseConfig } from "../../src/config/load-config.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";

describe("the config loader under arbitrary input", () => {
  it("either loads or says what is wrong; it never crashes", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.jsonValue({ maxDepth: 4 }).map((v) => stringify(v)),
        ),
        (text) => {
          try {
            parseConfig(text, "fuzz.yaml");
          } catch (error) {
            expect(error).toBeInstanceOf(ConfigError);
            expect((error as Error).message).toMatch(/^fuzz\.yaml (is not valid YAML|has \d+ problem)/);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("the Alertmanager webhook under arbitrary bodies", () => {
  const token = "fuzz-token-0123456789";
  const ingested: unknown[] = [];
  let url = "";
  const server = createHttpServer({
    log: pino({ level: "silent" }),
    ready: async () => ({ ok: true, reasons: [] }),
    routes: {
      "POST /hooks/alertmanager": createAlertsRoute({
        token,
        maxBodyBytes: 64 * 1024,
        ingest: async (payload) => {
          ingested.push(payload);
        },
        log: pino({ level: "silent" }),
      }),
    },
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/alertmanager`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it("answers 4xx and stores nothing for anything that is not a valid payload", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 500 }),
          fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
        ),
        async (body) => {
          const res = await fetch(url, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body,
          });
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
        },
      ),
      { numRuns: 200 },
    );
    expect(ingested).toEqual([]);
  });

  it("refuses a wrong or missing token before reading further", async () => {
    for (const authorization of ["", "Bearer wrong-token-000000000", `Basic ${token}`]) {
      const res = await fetch(url, {
        method: "POST",
        headers: authorization ? { authorization } : {},
        body: "{}",
      });
      expect(res.status).toBe(401);
    }
  });
});
