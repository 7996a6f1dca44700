/**
 * Approval reminders in a Teams personal chat: a chat has no reply chains, so a reminder is a message in
 * the chat itself and counts against the chat's per-conversation budget like the chat's cards do. The
 * real Teams chat port (botbuilder's connector client) against the connector emulator, a real Redis
 * runtime (notifier and sweeper).
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createConversationStore,
  createTeamsAdapter,
  type TeamsAdapter,
} from "../../src/adapters/teams/index.ts";
import type { ChatUser } from "../../src/core/model.ts";
import { type SentActivity, startTeamsEmulator, type TeamsEmulator } from "../emulators/teams/index.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import {
  quietLog,
  redisUrl,
  startTestRuntime,
  type TestRuntime,
  testConfig,
} from "../helpers/test-runtime.ts";

const appId = randomUUID();
const tenantId = randomUUID();
/** The Teams port's spacing per conversation (2 s in production), scaled down for the test. */
const paceMs = 500;
/** The example config grants this Entra object id the sre role. */
const sre: ChatUser = { id: "teams:00000000-0000-0000-0000-0000000000a1", name: "sre-1", groups: [] };

let teams: TeamsEmulator;
let storeRedis: Redis;
let adapter: TeamsAdapter;
let t: TestRuntime | undefined;

beforeEach(async () => {
  teams = await startTeamsEmulator({ appId, timeScale: paceMs / 2000 });
  storeRedis = new Redis(redisUrl);
});

afterEach(async () => {
  await adapter?.stop();
  await t?.close();
  t = undefined;
  await storeRedis?.quit();
  await teams?.close();
});

/** A runtime whose Teams port reaches `chat`, a personal chat the bot has heard from. */
async function startInChat(chat: string): Promise<TestRuntime> {
  const config = testConfig();
  const conversationStore = createConversationStore({ redis: storeRedis, prefix: config.redisPrefix });
  // What the adapter stores from an authenticated message in the chat.
  await conversationStore.save({
    conversationId: chat,
    serviceUrl: teams.serviceUrl,
    channelId: "msteams",
    botId: `28:${appId}`,
    tenantId,
    conversationType: "personal",
  });
  adapter = createTeamsAdapter({
    appId,
    appPassword: "unused-with-injected-credentials",
    appType: "SingleTenant",
    tenantId,
    handle: (command) => (t as TestRuntime).runtime.handle(command),
    handleAction: (action) => (t as TestRuntime).runtime.handleAction(action),
    log: quietLog,
    conversationStore,
    openIdMetadataUrl: teams.openIdMetadataUrl,
    credentialsFactory: { getToken: async (r) => teams.issuer.signBotToken(r.appId, r.audience) },
    pace: { intervalMs: paceMs },
    retry: { baseDelayMs: 5, maxDelayMs: 20 },
  });
  return startTestRuntime({
    executor: createGatedExecutor().executor,
    config,
    work: false,
    chats: { teams: adapter.chat },
  });
}

function textOf(sent: SentActivity): string {
  const attachments = sent.activity.attachments as Array<{
    content: { body: Array<{ inlines: Array<{ text: string }> }> };
  }>;
  return (attachments[0]?.content.body ?? []).map((b) => b.inlines.map((i) => i.text).join("")).join("\n");
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe("approval reminders in a Teams personal chat", () => {
  it("posts each reminder into the chat, spaced from the others and from the chat's cards by the chat's pace", async () => {
    const chat = `a:personal-reminders-${randomUUID()}`;
    t = await startInChat(chat);
    const requests = ["deploy api production v2", "deploy web production v3", "scale api production 3"];
    const jobIds: string[] = [];
    for (const text of requests) {
      const reply = await t.runtime.handle({
        id: randomUUID(),
        user: sre,
        conversation: { platform: "teams", channel: chat },
        text,
        receivedAt: Date.now(),
      });
      expect(reply.error?.message).toBeUndefined();
      jobIds.push(reply.jobIds[0] as string);
    }
    await until("the three request cards", () => (teams.activities(chat).length >= 3 ? true : undefined));

    // All three due at once rather than twenty minutes from now.
    for (const jobId of jobIds)
      await t.runtime.redis.zadd(t.runtime.keys.approvalReminders, Date.now() - 1, jobId);
    const isReminder = (a: SentActivity) => textOf(a).startsWith("⏰ Approval reminder");
    const reminders = await until("the three reminders", () => {
      const found = teams.activities(chat).filter(isReminder);
      return found.length >= 3 ? found : undefined;
    });

    // Into the chat itself: a personal chat has no reply chains.
    expect(reminders.map((r) => r.conversationId)).toEqual([chat, chat, chat]);
    expect(teams.activities(chat)).toHaveLength(6);
    // Cards and reminders share the chat's budget: no two calls into the chat closer than its pace
    // (less a margin for the time between booking a slot and the call reaching the connector).
    const times = teams
      .calls()
      .filter((c) => c.conversationId === chat && c.status < 300)
      .map((c) => c.at)
      .sort((a, b) => a - b);
    expect(times).toHaveLength(6);
    const gaps = times.slice(1).map((at, i) => at - (times[i] as number));
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(paceMs * 0.6);
    // One clock for the chat in Redis, not one per reminder.
    const paceKeys = await t.runtime.redis.keys(t.runtime.keys.pace("teams:*"));
    expect(paceKeys).toEqual([t.runtime.keys.pace(`teams:${chat}`)]);
  });
});
