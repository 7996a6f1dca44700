/**
 * A card click is answered within Teams' few seconds by racing the action against a budget timer.
 * That timer must go once the answer is sent: one left pending per click piles up under load and keeps
 * the process alive after everything else has stopped. Signed invokes go over HTTP to the real
 * CloudAdapter, with conversation references in the real Redis; the action handler answers at once,
 * so the budget is never what answers.
 */
import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createConversationStore,
  createTeamsAdapter,
  type TeamsAdapter,
} from "../../src/adapters/teams/index.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";
import { startTeamsEmulator, type TeamsEmulator, teamsCardAction } from "../emulators/teams/index.ts";
import { quietLog, redisUrl } from "../helpers/test-runtime.ts";

const appId = randomUUID();
const tenantId = randomUUID();
const prefix = `t${randomUUID().slice(0, 8)}`;
/** Far longer than the test: a timer still pending afterwards can only be a leaked budget timer. */
const invokeBudgetMs = 120_000;

let teams: TeamsEmulator;
let adapter: TeamsAdapter;
let server: Server;
let redis: Redis;
let url: string;

beforeAll(async () => {
  teams = await startTeamsEmulator({ appId });
  redis = new Redis(redisUrl);
  adapter = createTeamsAdapter({
    appId,
    appPassword: "unused-with-injected-credentials",
    appType: "SingleTenant",
    tenantId,
    handle: async () => ({ ok: true, jobIds: [], traceId: "" }),
    handleAction: async () => ({ ok: true, jobIds: ["j0timer000001"], traceId: "" }),
    log: quietLog,
    conversationStore: createConversationStore({ redis, prefix }),
    openIdMetadataUrl: teams.openIdMetadataUrl,
    credentialsFactory: { getToken: async (r) => teams.issuer.signBotToken(r.appId, r.audience) },
    invokeBudgetMs,
  });
  await adapter.start();
  server = createHttpServer({
    log: quietLog,
    ready: async () => ({ ok: true, reasons: [] }),
    routes: adapter.routes,
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/messages`;
});

afterAll(async () => {
  await adapter?.stop();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await cleanupPrefix(redis, prefix);
  await redis?.quit();
  await teams?.close();
});

async function click(): Promise<{ status: number; value: string }> {
  const activity = teamsCardAction({
    serviceUrl: teams.serviceUrl,
    appId,
    tenantId,
    from: { id: "29:sre", aadObjectId: "00000000-0000-0000-0000-0000000000a1", name: "sre-1" },
    conversationId: `a:personal-timer-${randomUUID()}`,
    verb: "cancel",
    value: "j0timer000001",
  });
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${teams.signActivityToken({ audience: appId })}`,
    },
    body: JSON.stringify(activity),
  });
  const body = (await res.json()) as { value: string };
  return { status: res.status, value: body.value };
}

const pendingTimers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("card clicks answered in time", () => {
  it("leave no timer pending once the answer is sent, however many clicks come in", async () => {
    await click(); // first contact loads signing keys and clients
    const before = pendingTimers();
    const clicks = 20;
    for (let i = 0; i < clicks; i++) {
      expect(await click()).toEqual({
        status: 200,
        value: "On it: job j0timer000001; the card will follow.",
      });
    }
    await adapter.idle();
    // A few timers belong to sockets and caches; a leak would add one per click.
    expect(pendingTimers() - before).toBeLessThan(5);
  });
});
