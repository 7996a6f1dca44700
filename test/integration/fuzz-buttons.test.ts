/**
 * Button clicks are untrusted input that arrives signed: a correctly signed Slack `block_actions` body or a
 * Teams `adaptiveCard/action` invoke can still carry any action, value, user or shape. Whatever they carry:
 * no crash and no unhandled rejection, no 5xx for the client's fault, an answer to every request, and no
 * job queued and no approval counted from it. A real runtime on Redis decides; Slack is the emulator.
 */
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSlackAdapter, type SlackAdapter } from "../../src/adapters/slack/index.ts";
import { computeSlackSignature } from "../../src/adapters/slack/verify-slack-signature.ts";
import {
  createConversationStore,
  createTeamsAdapter,
  type TeamsAdapter,
} from "../../src/adapters/teams/index.ts";
import type { ChatAction } from "../../src/app/handle-action.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";
import { type SlackEmulator, startSlackEmulator } from "../emulators/slack/index.ts";
import { teamsCardAction, teamsMessage } from "../emulators/teams/index.ts";
import { chatCommand, sreUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { quietLog, redisUrl, startTestRuntime, type TestRuntime } from "../helpers/test-runtime.ts";

const signingSecret = "fuzz-signing-secret";
const botToken = "xoxb-test-token";
const appId = "00000000-0000-0000-0000-00000000f022";
/** A deployer for staging only: may not approve, cancel or roll back anything in production. */
const deployer = "U0DEMO0001";

let slack: SlackEmulator;
let t: TestRuntime;
let slackAdapter: SlackAdapter;
let teamsAdapter: TeamsAdapter;
let teamsRedis: Redis;
let server: ReturnType<typeof createHttpServer>;
let base = "";
/** A production deploy by sre-1 waiting for two approvals: the real job id the fuzzer aims at. */
let pendingJob = "";
const actions: ChatAction[] = [];

beforeAll(async () => {
  slack = await startSlackEmulator({
    botToken,
    rateLimits: false,
    // An eligible approver (sre by group), used only where a decision must be refused for its request's state.
    usergroups: [{ id: "S0SRE", handle: "sre", users: ["U0SRE00002"] }],
  });
  // Worker and notifier on: they sweep expired approval requests. Nothing here may reach the executor.
  t = await startTestRuntime({ executor: createGatedExecutor().executor });
  const handleAction = (action: ChatAction) => {
    actions.push(action);
    return t.runtime.handleAction(action);
  };
  slackAdapter = createSlackAdapter({
    signingSecret,
    botToken,
    apiUrl: `${slack.url}/api/`,
    handle: (c) => t.runtime.handle(c),
    handleAction,
    log: quietLog,
    groupIds: ["S0SRE"],
  });
  teamsRedis = new Redis(redisUrl);
  teamsAdapter = createTeamsAdapter({
    appId,
    dangerouslyAllowUnauthenticated: true,
    handle: (c) => t.runtime.handle(c),
    handleAction,
    log: quietLog,
    conversationStore: createConversationStore({ redis: teamsRedis, prefix: t.config.redisPrefix }),
  });
  await slackAdapter.start();
  await teamsAdapter.start();
  server = createHttpServer({
    log: quietLog,
    ready: async () => ({ ok: true, reasons: [] }),
    routes: { ...slackAdapter.routes, ...teamsAdapter.routes },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const reply = await t.runtime.handle(chatCommand("/deploy api production v2", sreUser));
  expect(reply.error?.message).toBeUndefined();
  pendingJob = reply.jobIds[0] as string;
  await t.waitForPhase(pendingJob, ["pending-approval"]);
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await slackAdapter?.stop();
  await teamsAdapter?.stop();
  await t?.close();
  const redis = new Redis(redisUrl);
  await cleanupPrefix(redis, t.config.redisPrefix);
  await redis.quit();
  await teamsRedis?.quit();
  await slack?.close();
});

async function postSlack(body: string): Promise<Response> {
  const ts = String(Math.floor(Date.now() / 1000));
  return fetch(`${base}/slack/events`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-slack-request-timestamp": ts,
      "x-slack-signature": computeSlackSignature(signingSecret, ts, body),
    },
    body,
  });
}

/** Values a button may carry: the real pending job, job-shaped ids, garbage, huge strings, wrong types. */
const anyValue = fc.oneof(
  fc.constant(null).map(() => pendingJob),
  fc.constantFrom("jabcdef1", "j000000", "alert-x", "", " ", "../../etc", "j".repeat(21)),
  fc.string({ maxLength: 60 }),
  fc.string({ minLength: 10_000, maxLength: 20_000 }),
  fc.integer(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 2 }),
);
const anyAction = fc.oneof(
  fc.constantFrom("approve", "reject", "cancel", "rollback", "alert-ack", "alert-silence-1h"),
  fc.string({ maxLength: 40 }),
  fc.jsonValue({ maxDepth: 1 }),
);
/** Never a user who may decide: a staging deployer, strangers, malformed ids, wrong types. */
const anyUser = fc.oneof(
  fc.constantFrom(deployer, "U0NOBODY01", "", "U0SRE00001 ", "slack:U0SRE00002"),
  fc.string({ maxLength: 30 }).filter((s) => !/^U0SRE0000[0-9]$/.test(s)),
  fc.integer(),
  fc.constant(null),
);

function slackPayload(user: unknown, actionId: unknown, value: unknown, extra: Record<string, unknown>) {
  return {
    type: "block_actions",
    user: { id: user, username: "fuzz", name: "fuzz", team_id: "T0EMULATED" },
    api_app_id: "A0SHIPBOT",
    container: {
      type: "message",
      message_ts: "1700000000.000100",
      channel_id: "C0FUZZ",
      is_ephemeral: false,
    },
    trigger_id: `${Date.now()}.1.fuzz`,
    team: { id: "T0EMULATED", domain: "emulated" },
    channel: { id: "C0FUZZ", name: "fuzz" },
    response_url: "http://127.0.0.1:9/actions/unused",
    actions: [
      {
        action_id: typeof actionId === "string" ? `shipbot:${actionId}` : actionId,
        block_id: "b1",
        value,
        type: "button",
        action_ts: `${Date.now() / 1000}`,
      },
    ],
    ...extra,
  };
}

/** Any generated value as a string; JSON for objects (a `toString` key would break `String()`). */
function asText(value: unknown): string {
  return typeof value === "string" ? value : (JSON.stringify(value) ?? "");
}

async function assertNothingDecided(): Promise<void> {
  const state = await t.runtime.status.read(pendingJob);
  expect(state?.phase).toBe("pending-approval");
  expect(state?.approvedBy).toBeUndefined();
  const counts = await t.runtime.ops.queue.getJobCounts(
    "waiting",
    "prioritized",
    "delayed",
    "active",
    "completed",
    "failed",
  );
  expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
  for (const action of actions) {
    // What reached the router is typed: strings only, however the payload was shaped.
    expect(typeof action.action).toBe("string");
    expect(typeof action.value).toBe("string");
    expect(typeof action.user.id).toBe("string");
  }
}

describe("Slack block_actions with arbitrary contents, correctly signed", () => {
  it("answers each below 500, queues nothing and counts no approval", async () => {
    await fc.assert(
      fc.asyncProperty(
        anyUser,
        anyAction,
        anyValue,
        fc.oneof(
          fc.constant({}),
          fc.record({ actions: fc.oneof(fc.constant([]), fc.jsonValue({ maxDepth: 2 })) }),
          fc.record({ user: fc.jsonValue({ maxDepth: 2 }) }),
          fc.record({ channel: fc.jsonValue({ maxDepth: 1 }), container: fc.jsonValue({ maxDepth: 1 }) }),
        ),
        async (user, action, value, extra) => {
          const payload = JSON.stringify(slackPayload(user, action, value, extra));
          const res = await postSlack(new URLSearchParams({ payload }).toString());
          await res.arrayBuffer();
          expect(res.status).toBeLessThan(500);
          await slackAdapter.idle();
        },
      ),
      { numRuns: 80 },
    );
    // Bodies that are not even JSON, or JSON of the wrong type, are refused at the door.
    expect(actions.length).toBeGreaterThan(0);
    for (const payload of ["{", "[]", "42", '"x"', "null", '{"type":"block_actions","actions":"x"}']) {
      const res = await postSlack(new URLSearchParams({ payload }).toString());
      await res.arrayBuffer();
      expect(res.status, payload).toBeLessThan(500);
    }
    await slackAdapter.idle();
    await assertNothingDecided();
  });
});

describe("Teams adaptiveCard/action invokes with arbitrary contents", () => {
  it("answers each below 500, queues nothing and counts no approval", async () => {
    const reachedBefore = actions.length;
    await fc.assert(
      fc.asyncProperty(
        anyUser,
        anyAction,
        anyValue,
        fc.oneof(
          fc.constant({}),
          fc.record({ value: fc.jsonValue({ maxDepth: 3 }) }),
          fc.record({ name: fc.constantFrom("adaptiveCard/action", "composeExtension/submitAction", "x") }),
          fc.record({ from: fc.jsonValue({ maxDepth: 1 }), conversation: fc.jsonValue({ maxDepth: 1 }) }),
        ),
        async (user, action, value, extra) => {
          const activity = {
            ...teamsCardAction({
              serviceUrl: `${slack.url}/teams/`,
              appId,
              tenantId: "00000000-0000-0000-0000-0000000000aa",
              from: { id: "29:fuzz", aadObjectId: asText(user), name: "fuzz" },
              conversationId: "a:fuzz-conversation",
              verb: asText(action),
              value: asText(value),
            }),
            ...extra,
          } as Record<string, unknown>;
          // Wrong types where the card put strings.
          if (typeof value !== "string" && typeof activity.value === "object" && activity.value !== null) {
            (activity.value as { action?: unknown }).action = {
              type: "Action.Execute",
              verb: action,
              data: { value },
            };
          }
          const res = await fetch(`${base}/api/messages`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(activity),
          });
          await res.arrayBuffer();
          // botbuilder answers 501 to invoke names no handler implements (as Teams expects); anything else
          // is answered below 500.
          if (activity.name === "adaptiveCard/action") expect(res.status).toBeLessThan(500);
          else expect([200, 400, 401, 404, 501]).toContain(res.status);
        },
      ),
      { numRuns: 100 },
    );
    // The well-formed share of them reached the router (and was refused there).
    expect(actions.length).toBeGreaterThan(reachedBefore);
    await assertNothingDecided();
  });
});

/** Service arguments that name no service: shell syntax, traversal, selectors, look-alikes, invisible marks. */
const hostileService = fc.constantFrom(
  "api;rm -rf /",
  "api|id",
  "$(id)",
  "`id`",
  "../api",
  "api\u200b",
  "\uff41pi",
  "app=api,tier!=db",
  "api%00",
  "a".repeat(100_000),
);
/** Who sends commands: strangers (no role anywhere) and malformed ids; never someone who may deploy. */
const stranger = fc.oneof(
  fc.constantFrom("U0NOBODY01", "", " ", "W0GUEST001", "slack:U0SRE00001"),
  fc.string({ maxLength: 30 }).filter((id) => !/^U0(DEMO|SRE)/.test(id.trim())),
);
const anyText = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.constantFrom("api staging v2", "api production v2", "* staging v2", "api staging 3", "api staging"),
  fc.tuple(hostileService, fc.string({ maxLength: 20 })).map(([svc, rest]) => `${svc} staging ${rest}`),
);

describe("Slack slash commands with arbitrary contents, correctly signed", () => {
  it("answers each below 500 and never queues a job from a stranger or an invalid argument", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ user: stranger, text: anyText }),
          // Someone who may deploy to staging, with arguments that are never valid.
          fc.record({
            user: fc.constant(deployer),
            text: fc
              .tuple(
                hostileService,
                fc.constantFrom("staging", "staging;", "st\u0430ging"),
                fc.string({ maxLength: 20 }),
              )
              .map(([svc, env, version]) => `${svc} ${env} ${version}`),
          }),
        ),
        fc.constantFrom("/deploy", "/rollback", "/scale", "/shipbot", "/lock", "/x"),
        fc.dictionary(
          fc.constantFrom("channel_id", "team_id", "user_name", "trigger_id"),
          fc.string({ maxLength: 40 }),
        ),
        async ({ user, text }, command, extra) => {
          const body = new URLSearchParams({
            token: "unused",
            team_id: "T0EMULATED",
            channel_id: "C0FUZZ",
            user_id: user,
            user_name: "fuzz",
            command,
            text,
            response_url: "http://127.0.0.1:9/commands/unused",
            trigger_id: `${Date.now()}.1.fuzz`,
            ...extra,
          }).toString();
          const res = await postSlack(body);
          await res.arrayBuffer();
          expect(res.status).toBeLessThan(500);
          await slackAdapter.idle();
        },
      ),
      { numRuns: 80 },
    );
    // Found by this property: a field naming an object's own machinery answered 500.
    for (const field of ["team_id", "channel_id", "user_id", "trigger_id", "enterprise_id"]) {
      for (const value of [
        "__proto__",
        "constructor",
        "prototype",
        "toString",
        "hasOwnProperty",
        "valueOf",
      ]) {
        const body = new URLSearchParams({
          team_id: "T0EMULATED",
          channel_id: "C0FUZZ",
          user_id: "U0NOBODY01",
          command: "/deploy",
          text: "api staging v2",
          trigger_id: "1.1.fuzz",
          [field]: value,
        }).toString();
        const res = await postSlack(body);
        await res.arrayBuffer();
        expect(res.status, `${field}=${value}`).toBeLessThan(500);
      }
    }
    await slackAdapter.idle();
    await assertNothingDecided();
  });
});

describe("Teams messages with arbitrary contents", () => {
  it("answers each below 500 and never queues a job from a stranger or an invalid argument", async () => {
    await fc.assert(
      fc.asyncProperty(
        stranger,
        fc.oneof(
          anyText.map((text) => `deploy ${text}`),
          fc.string({ maxLength: 300 }),
        ),
        fc.boolean(),
        async (user, text, mention) => {
          const activity = teamsMessage({
            serviceUrl: `${slack.url}/teams/`,
            appId,
            tenantId: "00000000-0000-0000-0000-0000000000aa",
            from: { id: "29:fuzz", aadObjectId: user, name: "fuzz" },
            conversationId: "a:fuzz-conversation",
            text,
            mention,
          });
          const res = await fetch(`${base}/api/messages`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(activity),
          });
          await res.arrayBuffer();
          expect(res.status).toBeLessThan(500);
        },
      ),
      { numRuns: 60 },
    );
    await assertNothingDecided();
  });
});

describe("a button on someone else's or an expired request", () => {
  it("is refused and the ledger records the denial", async () => {
    const click = (user: string, action: string) =>
      postSlack(
        new URLSearchParams({
          payload: JSON.stringify(slackPayload(user, action, pendingJob, {})),
        }).toString(),
      );
    const before = Date.now() - 1;
    // The requester approving their own request, and a staging deployer approving someone else's.
    for (const user of ["U0SRE00001", deployer]) {
      const res = await click(user, "approve");
      expect(res.status).toBe(200);
    }
    await slackAdapter.idle();
    // The request expires; a click afterwards changes nothing.
    const past = Date.now() - 1;
    await t.runtime.redis.hset(t.runtime.keys.job(pendingJob), "expiresAt", String(past));
    await t.runtime.redis.zadd(t.runtime.keys.approvals, past, pendingJob);
    await t.waitForPhase(pendingJob, ["cancelled"], 10_000);
    expect((await click(deployer, "cancel")).status).toBe(200);
    expect((await click("U0SRE00002", "approve")).status).toBe(200);
    await slackAdapter.idle();

    const denied: Array<Record<string, string>> = [];
    await t.runtime.audit.read(before, (entries) => {
      for (const e of entries)
        if (e.type === "approval.denied") denied.push(e.fields as Record<string, string>);
    });
    expect(denied.map((d) => [d.actor, d.job, d.reason])).toEqual([
      ["slack:U0SRE00001", pendingJob, "you asked for this change; someone else must approve it"],
      ["slack:U0DEMO0001", pendingJob, expect.stringMatching(/^approving needs role `sre`/)],
      ["slack:U0SRE00002", pendingJob, "this request is already cancelled"],
    ]);
    const state = await t.runtime.status.read(pendingJob);
    expect(state?.phase).toBe("cancelled");
    expect(state?.approvedBy).toBeUndefined();
  });
});
