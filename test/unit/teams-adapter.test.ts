import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createTeamsAdapter, type TeamsAdapterOptions } from "../../src/adapters/teams/index.ts";

function options(overrides: Partial<TeamsAdapterOptions> = {}): TeamsAdapterOptions {
  return {
    appId: "",
    handle: async () => ({ ok: true, jobIds: [], traceId: "" }),
    handleAction: async () => ({ ok: true, jobIds: [], traceId: "" }),
    log: pino({ level: "silent" }),
    conversationStore: { save: async () => undefined, load: async () => undefined },
    ...overrides,
  };
}

describe("createTeamsAdapter start-up checks", () => {
  it("refuses to run without an app id unless authentication is explicitly off", () => {
    expect(() => createTeamsAdapter(options())).toThrow(/MicrosoftAppId is empty/);
    expect(() => createTeamsAdapter(options({ appId: "a", appType: "MultiTenant" }))).toThrow(
      /MicrosoftAppPassword is empty/,
    );
    expect(() =>
      createTeamsAdapter(options({ appId: "a", appPassword: "p", appType: "SingleTenant" })),
    ).toThrow(/MicrosoftAppTenantId is required/);
    expect(() => createTeamsAdapter(options({ appId: "a", appPassword: "p" }))).not.toThrow();
  });

  it("says loudly at start that authentication is off", async () => {
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => lines.push(line) });
    const adapter = createTeamsAdapter(options({ dangerouslyAllowUnauthenticated: true, log }));
    await adapter.start();
    expect(lines.some((l) => l.includes('"level":40') && l.includes("TEAMS AUTHENTICATION IS OFF"))).toBe(
      true,
    );
    await adapter.stop();
  });

  it("answers 503 until started and 400 to what is not an activity", async () => {
    const adapter = createTeamsAdapter(options({ appId: "a", appPassword: "p" }));
    const route = adapter.routes["POST /api/messages"];
    expect(route).toBeDefined();
    const { createServer } = await import("node:http");
    const server = createServer((req, res) => void route?.(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/api/messages`;
    try {
      expect((await fetch(url, { method: "POST", body: "{}" })).status).toBe(503);
      await adapter.start();
      expect((await fetch(url, { method: "POST", body: "not json" })).status).toBe(400);
      expect((await fetch(url, { method: "POST", body: JSON.stringify({ type: "message" }) })).status).toBe(
        400,
      );
      const huge = JSON.stringify({ type: "message", text: "x".repeat(1024 * 1024) });
      expect((await fetch(url, { method: "POST", body: huge })).status).toBe(413);
    } finally {
      await adapter.stop();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
