import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createSlackAdapter, type SlackAdapterOptions } from "../../src/adapters/slack/index.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";

const log = pino({ level: "silent" });
const base: SlackAdapterOptions = {
  signingSecret: "s",
  botToken: "xoxb-x",
  apiUrl: "http://127.0.0.1:9/api/",
  handle: async () => ({ ok: true, jobIds: [], traceId: "" }),
  handleAction: async () => ({ ok: true, jobIds: [], traceId: "" }),
  log,
  groupIds: [],
};

describe("createSlackAdapter", () => {
  it("serves HTTP by default and Socket Mode when an app token is set", () => {
    const http = createSlackAdapter(base);
    expect(http.mode).toBe("http");
    expect(Object.keys(http.routes)).toEqual(["POST /slack/events"]);
    // Construction only: opening a Socket Mode connection needs Slack (apps.connections.open).
    const socket = createSlackAdapter({ ...base, signingSecret: "", appToken: "xapp-1-x" });
    expect(socket.mode).toBe("socket");
    expect(socket.routes).toEqual({});
  });

  it("refuses HTTP mode without a signing secret", () => {
    expect(() => createSlackAdapter({ ...base, signingSecret: "" })).toThrow(/SLACK_SIGNING_SECRET/);
  });

  it("answers 503 until started, and paces posts per channel and edits per workspace", async () => {
    const adapter = createSlackAdapter({
      ...base,
      pace: { postIntervalMs: 55.000001, updateIntervalMs: 62.5 },
    });
    expect(adapter.chat.pace?.("post", { platform: "slack", channel: "C1" })).toEqual({
      key: "slack:post:C1",
      intervalMs: 56,
    });
    expect(adapter.chat.pace?.("update", { platform: "slack", channel: "C2", thread: "1.2" })).toEqual({
      key: "slack:update",
      intervalMs: 63,
    });
    const server = createHttpServer({
      log,
      ready: async () => ({ ok: true, reasons: [] }),
      routes: adapter.routes,
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const res = await fetch(`http://127.0.0.1:${port}/slack/events`, { method: "POST", body: "x" });
      expect(res.status).toBe(503);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
