/**
 * SHIPBOT_TEAMS_DANGEROUSLY_ALLOW_UNAUTHENTICATED against a local connector: unsigned activities are
 * accepted and replies go out without a token, whatever MicrosoftAppType the deployment's settings name
 * (docs/teams.md recommends Single Tenant, so the switch is flipped on top of such settings).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTeamsAdapter, type TeamsAppType } from "../../src/adapters/teams/index.ts";
import { createCard } from "../../src/core/card.ts";
import type { ChatCommand } from "../../src/core/model.ts";
import { startTeamsEmulator, type TeamsEmulator, teamsMessage } from "../emulators/teams/index.ts";

const appId = "00000000-0000-0000-0000-00000000b07a";
const tenantId = "00000000-0000-0000-0000-0000000000t1";
const user = { id: "29:dev", aadObjectId: "00000000-0000-0000-0000-0000000000d1", name: "dev" };

let teams: TeamsEmulator;

beforeAll(async () => {
  // The connector takes calls without a token, as the Bot Framework Emulator does.
  teams = await startTeamsEmulator({ appId, requireAuth: false });
});

afterAll(async () => {
  await teams?.close();
});

async function withAdapter(appType: TeamsAppType, run: (url: string) => Promise<void>) {
  const adapter = createTeamsAdapter({
    appId,
    appType,
    tenantId,
    dangerouslyAllowUnauthenticated: true,
    handle: async (command: ChatCommand) => ({
      ok: true,
      card: createCard("info", `you said: ${command.text}`),
      jobIds: [],
      traceId: "",
    }),
    handleAction: async () => ({ ok: true, jobIds: [], traceId: "" }),
    log: pino({ level: "silent" }),
    conversationStore: { save: async () => undefined, load: async () => undefined },
  });
  await adapter.start();
  const route = adapter.routes["POST /api/messages"];
  const server: Server = createServer((req, res) => void route?.(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/messages`);
  } finally {
    await adapter.stop();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("Teams with authentication switched off (local emulators)", () => {
  for (const appType of ["SingleTenant", "UserAssignedMSI", "MultiTenant"] as const) {
    it(`starts and answers an unsigned message when MicrosoftAppType is ${appType}`, async () => {
      await withAdapter(appType, async (url) => {
        const conversationId = `a:unauthenticated-${appType}`;
        const activity = teamsMessage({
          serviceUrl: teams.serviceUrl,
          appId,
          tenantId,
          from: user,
          conversationId,
          text: "whoami",
        });
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(activity),
        });
        expect(res.status).toBe(200);
        let reply = teams.activities(conversationId)[0];
        for (let i = 0; reply === undefined && i < 100; i++) {
          await sleep(20);
          reply = teams.activities(conversationId)[0];
        }
        expect(reply?.replyToId).toBe(activity.id);
        expect(JSON.stringify(reply?.activity)).toContain("you said: whoami");
      });
    });
  }
});
