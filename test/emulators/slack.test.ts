import {
  LogLevel,
  type WebAPIHTTPError,
  type WebAPIRateLimitedError,
  WebClient,
  WebClientEvent,
} from "@slack/web-api";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { type SlackEmulator, type SlackEmulatorOptions, startSlackEmulator } from "./slack/index.ts";

const token = "xoxb-test-token";
const channel = "C0DEPLOYS";
const otherChannel = "C0ALERTS";
const notMember = "C0RANDOM";
const tsFormat = /^\d{10}\.\d{6}$/;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

type ClientOptions = ConstructorParameters<typeof WebClient>[1];

/** `withToken: ""` sends no token at all. */
function clientFor(emulator: SlackEmulator, extra: ClientOptions = {}, withToken = token) {
  return new WebClient(withToken, {
    slackApiUrl: `${emulator.url}/api/`,
    logLevel: LogLevel.ERROR,
    retryConfig: { retries: 0 },
    ...extra,
  });
}

/** What the real client throws for `{ ok: false }`: a platform error carrying Slack's code in data.error. */
async function slackErrorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const e = error as { code?: string; data?: { error?: string } };
    expect(e.code).toBe("slack_webapi_platform_error");
    return e.data?.error ?? "(none)";
  }
  throw new Error("expected the call to fail");
}

async function withEmulator<T>(
  options: SlackEmulatorOptions,
  body: (e: SlackEmulator) => Promise<T>,
): Promise<T> {
  const emulator = await startSlackEmulator(options);
  try {
    return await body(emulator);
  } finally {
    await emulator.close();
  }
}

const people = [
  { id: "U0DEV1", name: "dev-1" },
  { id: "U0SRE1", name: "sre-1" },
  { id: "W0SRE2", name: "sre-2", team_id: "T0OTHER" },
];

describe("messages (limits off)", () => {
  let emulator: SlackEmulator;
  let client: WebClient;

  beforeAll(async () => {
    emulator = await startSlackEmulator({
      rateLimits: false,
      timeScale: 0.05,
      channels: [channel, otherChannel],
      otherChannels: [notMember],
      users: people,
      usergroups: [{ id: "S0SRE", handle: "sre", users: ["U0SRE1", "W0SRE2"] }],
    });
    client = clientFor(emulator);
  });
  afterEach(() => emulator.reset());
  afterAll(() => emulator.close());

  test("auth.test names the bot", async () => {
    const res = await client.auth.test();
    expect(res.ok).toBe(true);
    expect(res.user_id).toBe(emulator.botUserId);
    expect(typeof res.team_id).toBe("string");
  });

  test("post, reply in a thread and update keep Slack's ts format and an edit history", async () => {
    const first = await client.chat.postMessage({ channel, text: "🚀 api → production" });
    expect(first.ok).toBe(true);
    expect(first.channel).toBe(channel);
    expect(first.ts).toMatch(tsFormat);
    expect(first.message?.text).toBe("🚀 api → production");

    const parent = first.ts ?? "";
    const reply = await client.chat.postMessage({ channel, text: "⏳ Queued", thread_ts: parent });
    expect(reply.ts).toMatch(tsFormat);
    expect(Number(reply.ts)).toBeGreaterThan(Number(parent));
    expect(reply.message?.thread_ts).toBe(parent);

    const blocks = [{ type: "section", text: { type: "mrkdwn", text: "*Rolling out* 3/6" } }];
    const updated = await client.chat.update({ channel, ts: parent, text: "▶ Rolling out", blocks });
    expect(updated.ok).toBe(true);
    expect(updated.ts).toBe(parent);
    expect(updated.text).toBe("▶ Rolling out");
    await client.chat.update({ channel, ts: parent, text: "✅ Deployed" });

    const stored = emulator.message(channel, parent);
    expect(stored?.text).toBe("✅ Deployed");
    expect(stored?.blocks).toBeUndefined();
    expect(stored?.edits).toBe(2);
    expect(stored?.history.map((v) => v.text)).toEqual([
      "🚀 api → production",
      "▶ Rolling out",
      "✅ Deployed",
    ]);
    expect(stored?.history[1]?.blocks).toEqual(blocks);

    const all = emulator.messages(channel);
    expect(all.map((m) => m.ts)).toEqual([parent, reply.ts]);
    expect(all[1]?.thread_ts).toBe(parent);
    expect(all[1]?.orphan).toBeUndefined();
    expect(emulator.messages(otherChannel)).toEqual([]);
  });

  test("ts values stay unique and increasing across a burst of posts", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.chat.postMessage({ channel, text: `n${i}` })),
    );
    const ts = results.map((r) => r.ts ?? "");
    expect(new Set(ts).size).toBe(20);
    const ordered = emulator.messages(channel).map((m) => m.ts);
    expect(ordered).toEqual([...ts].sort((a, b) => Number(a) - Number(b)));
  });

  test("a reply to a missing parent is accepted, as Slack does, but marked orphan", async () => {
    const res = await client.chat.postMessage({ channel, text: "lost", thread_ts: "1700000000.000100" });
    expect(res.ok).toBe(true);
    expect(emulator.message(channel, res.ts ?? "")?.orphan).toBe(true);
  });

  test("errors the client surfaces: channels, token, content limits", async () => {
    expect(await slackErrorOf(client.chat.postMessage({ channel: "C0NOSUCH", text: "x" }))).toBe(
      "channel_not_found",
    );
    expect(await slackErrorOf(client.chat.postMessage({ channel: notMember, text: "x" }))).toBe(
      "not_in_channel",
    );
    const wrong = clientFor(emulator, {}, "xoxb-wrong");
    expect(await slackErrorOf(wrong.chat.postMessage({ channel, text: "x" }))).toBe("invalid_auth");
    const anonymous = clientFor(emulator, {}, "");
    expect(await slackErrorOf(anonymous.auth.test())).toBe("not_authed");
    expect(await slackErrorOf(client.apiCall("chat.frobnicate"))).toBe("unknown_method");

    expect(await slackErrorOf(client.chat.postMessage({ channel, text: "" }))).toBe("no_text");
    expect(await slackErrorOf(client.chat.postMessage({ channel, text: "x".repeat(40_001) }))).toBe(
      "msg_too_long",
    );
    await client.chat.postMessage({ channel, text: "x".repeat(40_000) });
    const tooMany = Array.from({ length: 51 }, () => ({ type: "divider" }));
    expect(await slackErrorOf(client.chat.postMessage({ channel, text: "x", blocks: tooMany }))).toBe(
      "invalid_blocks",
    );
    const untyped = [{ text: "no type" }] as unknown as never[];
    expect(await slackErrorOf(client.chat.postMessage({ channel, text: "x", blocks: untyped }))).toBe(
      "invalid_blocks",
    );
    expect(emulator.messages()).toHaveLength(1);
    expect(emulator.calls().map((c) => c.error ?? "ok")).toEqual([
      "channel_not_found",
      "not_in_channel",
      "invalid_auth",
      "not_authed",
      "unknown_method",
      "no_text",
      "msg_too_long",
      "ok",
      "invalid_blocks",
      "invalid_blocks",
    ]);
  });

  test("chat.update refuses unknown messages and messages the bot did not write", async () => {
    expect(await slackErrorOf(client.chat.update({ channel, ts: "1700000000.000001", text: "x" }))).toBe(
      "message_not_found",
    );
    const human = emulator.addMessage({ channel, user: "U0DEV1", text: "/deploy api production" });
    expect(await slackErrorOf(client.chat.update({ channel, ts: human.ts, text: "x" }))).toBe(
      "cant_update_message",
    );
    const reply = await client.chat.postMessage({ channel, text: "on it", thread_ts: human.ts });
    expect(emulator.message(channel, reply.ts ?? "")?.orphan).toBeUndefined();
  });

  test("JSON bodies need the bearer header; form bodies may carry the token", async () => {
    const post = (body: string, headers: Record<string, string>) =>
      fetch(`${emulator.url}/api/chat.postMessage`, { method: "POST", body, headers }).then(
        async (r) => [r.status, await r.json()] as const,
      );
    const json = JSON.stringify({ channel, text: "json", blocks: [{ type: "divider" }] });
    expect(
      await post(json, {
        "content-type": "application/json; charset=utf-8",
        authorization: `Bearer ${token}`,
      }),
    ).toMatchObject([200, { ok: true, message: { blocks: [{ type: "divider" }] } }]);
    expect(
      await post(JSON.stringify({ token, channel, text: "json" }), { "content-type": "application/json" }),
    ).toEqual([200, { ok: false, error: "not_authed" }]);
    const form = new URLSearchParams({ token, channel, text: "form" }).toString();
    expect(await post(form, { "content-type": "application/x-www-form-urlencoded" })).toMatchObject([
      200,
      { ok: true },
    ]);
    expect(emulator.calls("chat.postMessage").every((c) => !("token" in c.args))).toBe(true);
  });

  test("ephemerals, users, usergroups and conversations", async () => {
    const eph = await client.chat.postEphemeral({ channel, user: "U0DEV1", text: "only you" });
    expect(eph.message_ts).toMatch(tsFormat);
    expect(emulator.ephemerals(channel)).toEqual([{ channel, user: "U0DEV1", text: "only you" }]);
    expect(await slackErrorOf(client.chat.postEphemeral({ channel, user: "U0NOBODY", text: "x" }))).toBe(
      "user_not_in_channel",
    );

    const group = await client.usergroups.users.list({ usergroup: "S0SRE" });
    expect(group.users).toEqual(["U0SRE1", "W0SRE2"]);
    expect(await slackErrorOf(client.usergroups.users.list({ usergroup: "S0NONE" }))).toBe("no_such_subteam");

    const info = await client.users.info({ user: "W0SRE2" });
    expect(info.user).toMatchObject({ id: "W0SRE2", name: "sre-2", team_id: "T0OTHER", is_bot: false });
    expect(await slackErrorOf(client.users.info({ user: "U0NOBODY" }))).toBe("user_not_found");

    const conv = await client.conversations.info({ channel: notMember });
    expect(conv.channel).toMatchObject({ id: notMember, is_member: false });
    expect(await slackErrorOf(client.conversations.info({ channel: "C0NOSUCH" }))).toBe("channel_not_found");
  });

  test("reset clears state", async () => {
    await client.chat.postMessage({ channel, text: "x" });
    emulator.reset();
    expect(emulator.messages()).toEqual([]);
    expect(emulator.calls()).toEqual([]);
  });
});

describe("views", () => {
  test("views.open exchanges a trigger id once, within its 3 s lifetime", async () => {
    // Scaled lifetime = 600 ms: ample for an immediate use, short enough to wait out.
    await withEmulator({ timeScale: 0.2 }, async (emulator) => {
      const client = clientFor(emulator);
      const view = {
        type: "modal" as const,
        title: { type: "plain_text" as const, text: "Reason" },
        blocks: [],
      };
      const trigger = emulator.triggerId("U0DEV1");
      const opened = await client.views.open({ trigger_id: trigger, view });
      expect(opened.view?.id).toMatch(/^V[0-9A-F]+$/);
      expect(emulator.views()).toMatchObject([{ id: opened.view?.id, user: "U0DEV1", trigger_id: trigger }]);
      expect(await slackErrorOf(client.views.open({ trigger_id: trigger, view }))).toBe(
        "exchanged_trigger_id",
      );
      expect(await slackErrorOf(client.views.open({ trigger_id: "1.2.made-up", view }))).toBe(
        "invalid_arguments",
      );
      const stale = emulator.triggerId();
      await sleep(3_000 * 0.2 + 200);
      expect(await slackErrorOf(client.views.open({ trigger_id: stale, view }))).toBe("expired_trigger_id");
    });
  });
});

describe("rate limits", () => {
  test("ten parallel posts to one channel: the burst passes, the rest get 429 with Retry-After", async () => {
    // Real time: nothing here waits, and a 1 s refill leaves no doubt that all ten arrive inside one window.
    await withEmulator({ timeScale: 1 }, async (emulator) => {
      const client = clientFor(emulator, { rejectRateLimitedCalls: true });
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => client.chat.postMessage({ channel, text: `m${i}` })),
      );
      const rejected = results
        .filter((r) => r.status === "rejected")
        .map((r) => r.reason as WebAPIRateLimitedError);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
      expect(rejected).toHaveLength(7);
      for (const error of rejected) {
        expect(error.code).toBe("slack_webapi_rate_limited_error");
        expect(error.retryAfter).toBe(1);
      }
      expect(emulator.rateLimited("chat.postMessage")).toBe(7);
      expect(emulator.messages(channel)).toHaveLength(3);
      const limited = emulator.calls("chat.postMessage").filter((c) => c.status === 429);
      expect(limited.every((c) => c.error === "ratelimited" && (c.retryAfterMs ?? 0) > 0)).toBe(true);

      // Per channel: another channel still has its own burst.
      await client.chat.postMessage({ channel: otherChannel, text: "elsewhere" });

      const raw = await fetch(`${emulator.url}/api/chat.postMessage`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ channel, text: "again" }),
      });
      expect(raw.status).toBe(429);
      expect(raw.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
      expect(await raw.json()).toEqual({ ok: false, error: "ratelimited" });
    });
  });

  test("by default the client waits Retry-After and retries until every post lands", async () => {
    // One token per 500 ms: the two posts over the burst wait the 1 s header and find two tokens back.
    await withEmulator({ timeScale: 0.5 }, async (emulator) => {
      const client = clientFor(emulator, { retryConfig: { retries: 3, minTimeout: 0, maxTimeout: 1 } });
      const seen: number[] = [];
      client.on(WebClientEvent.RATE_LIMITED, (retrySec: number) => seen.push(retrySec));
      const started = Date.now();
      await Promise.all(
        Array.from({ length: 5 }, (_, i) => client.chat.postMessage({ channel, text: `p${i}` })),
      );
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
      expect(seen).toEqual([1, 1]);
      expect(emulator.rateLimited("chat.postMessage")).toBe(2);
      expect(
        emulator
          .messages(channel)
          .map((m) => m.text)
          .sort(),
      ).toEqual(["p0", "p1", "p2", "p3", "p4"]);
    });
  });

  test("a sender paced at one post per window never sees a 429", async () => {
    await withEmulator({ timeScale: 0.05 }, async (emulator) => {
      const client = clientFor(emulator, { rejectRateLimitedCalls: true });
      for (let i = 0; i < 10; i++) {
        await client.chat.postMessage({ channel, text: `tick ${i}` });
        await sleep(1000 * 0.05 + 15); // one window plus a margin for timer jitter
      }
      expect(emulator.rateLimited()).toBe(0);
      expect(emulator.messages(channel)).toHaveLength(10);
    });
  });

  test("chat.update shares a Tier 3 budget (50 per minute) across the workspace", async () => {
    // Scaled minute = 6 s: far longer than 51 local calls take, so the 51st is inside the window for sure.
    await withEmulator({ timeScale: 0.1 }, async (emulator) => {
      const client = clientFor(emulator, { rejectRateLimitedCalls: true });
      const a = await client.chat.postMessage({ channel, text: "card a" });
      const b = await client.chat.postMessage({ channel: otherChannel, text: "card b" });
      for (let i = 0; i < 50; i++) {
        const target = i % 2 === 0 ? { channel, ts: a.ts ?? "" } : { channel: otherChannel, ts: b.ts ?? "" };
        await client.chat.update({ ...target, text: `progress ${i}` });
      }
      const error = await client.chat.update({ channel, ts: a.ts ?? "", text: "one too many" }).then(
        () => undefined,
        (e: unknown) => e as WebAPIRateLimitedError,
      );
      expect(error?.code).toBe("slack_webapi_rate_limited_error");
      expect(error?.retryAfter).toBeGreaterThanOrEqual(1);
      expect(error?.retryAfter).toBeLessThanOrEqual(6);
      expect(emulator.rateLimited("chat.update")).toBe(1);
      expect(emulator.message(channel, a.ts ?? "")?.text).toBe("progress 48");
    });
  });

  test("a window frees up once its oldest call ages out", async () => {
    const limits = { "chat.update": { kind: "window" as const, limit: 3, windowMs: 60_000 } };
    // Scaled window = 600 ms.
    await withEmulator({ timeScale: 0.01, limits }, async (emulator) => {
      const client = clientFor(emulator, { rejectRateLimitedCalls: true });
      const posted = await client.chat.postMessage({ channel, text: "card" });
      const update = (text: string) => client.chat.update({ channel, ts: posted.ts ?? "", text });
      for (const text of ["1", "2", "3"]) await update(text);
      await expect(update("4")).rejects.toMatchObject({ code: "slack_webapi_rate_limited_error" });
      await sleep(600 + 200);
      await update("5");
      expect(emulator.message(channel, posted.ts ?? "")?.history.map((v) => v.text)).toEqual([
        "card",
        "1",
        "2",
        "3",
        "5",
      ]);
    });
  });

  test("usergroups.users.list is Tier 2 (20 per minute); users.info is Tier 4 (100 per minute)", async () => {
    await withEmulator(
      { timeScale: 1, users: people, usergroups: [{ id: "S0SRE", handle: "sre", users: ["U0SRE1"] }] },
      async (emulator) => {
        const client = clientFor(emulator, { rejectRateLimitedCalls: true });
        for (let i = 0; i < 20; i++) await client.usergroups.users.list({ usergroup: "S0SRE" });
        await expect(client.usergroups.users.list({ usergroup: "S0SRE" })).rejects.toMatchObject({
          code: "slack_webapi_rate_limited_error",
        });
        for (let i = 0; i < 100; i++) await client.users.info({ user: "U0DEV1" });
        await expect(client.users.info({ user: "U0DEV1" })).rejects.toMatchObject({
          code: "slack_webapi_rate_limited_error",
        });
        expect(emulator.rateLimited("usergroups.users.list")).toBe(1);
        expect(emulator.rateLimited("users.info")).toBe(1);
      },
    );
  });
});

describe("fault injection", () => {
  test("a 500 reaches the client as an HTTP error and changes nothing", async () => {
    await withEmulator({ timeScale: 0.05 }, async (emulator) => {
      const client = clientFor(emulator);
      emulator.failNext("chat.postMessage", 500);
      const error = await client.chat.postMessage({ channel, text: "x" }).then(
        () => undefined,
        (e: unknown) => e as WebAPIHTTPError,
      );
      expect(error?.code).toBe("slack_webapi_http_error");
      expect(error?.statusCode).toBe(500);
      expect(emulator.messages()).toEqual([]);
      await client.chat.postMessage({ channel, text: "after" });
      expect(emulator.calls("chat.postMessage").map((c) => c.status)).toEqual([500, 200]);
    });
  });

  test("503 twice, then a retrying client gets through with exactly one message", async () => {
    await withEmulator({ timeScale: 0.05 }, async (emulator) => {
      const client = clientFor(emulator, { retryConfig: { retries: 3, minTimeout: 0, maxTimeout: 1 } });
      emulator.failNext("chat.postMessage", 503, 2);
      const res = await client.chat.postMessage({ channel, text: "eventually" });
      expect(res.ok).toBe(true);
      expect(emulator.calls("chat.postMessage").map((c) => c.status)).toEqual([503, 503, 200]);
      expect(emulator.messages(channel)).toHaveLength(1);
    });
  });

  test("a hung request times out in the client and is not applied", async () => {
    await withEmulator({ timeScale: 0.05 }, async (emulator) => {
      const client = clientFor(emulator, { timeout: 200 });
      emulator.failNext("chat.update", "timeout");
      const posted = await client.chat.postMessage({ channel, text: "card" });
      await expect(client.chat.update({ channel, ts: posted.ts ?? "", text: "lost" })).rejects.toMatchObject({
        code: "slack_webapi_request_error",
      });
      expect(emulator.message(channel, posted.ts ?? "")?.edits).toBe(0);
      expect(emulator.calls("chat.update")).toMatchObject([{ status: 0, error: "timeout" }]);
    });
  });

  test("a lost answer: the post is applied, the client times out, and a retrying client posts twice", async () => {
    await withEmulator({ timeScale: 0.05 }, async (emulator) => {
      const client = clientFor(emulator, { timeout: 200, retryConfig: { retries: 1, minTimeout: 0 } });
      emulator.failNext("chat.postMessage", "lost");
      const res = await client.chat.postMessage({ channel, text: "card" });
      expect(res.ok).toBe(true);
      // Why shipbot never lets the client retry a post: the first one was applied too.
      expect(emulator.messages(channel).map((m) => m.text)).toEqual(["card", "card"]);
      expect(emulator.calls("chat.postMessage").map((c) => c.status)).toEqual([0, 200]);
    });
  });
});

describe("history and message metadata", () => {
  test("metadata is stored and returned only with include_all_metadata; replies stay in their thread", async () => {
    await withEmulator({ rateLimits: false }, async (emulator) => {
      const client = clientFor(emulator);
      const metadata = { event_type: "shipbot_card", event_payload: { token: "t-1" } };
      const root = await client.chat.postMessage({ channel, text: "root", metadata });
      await client.chat.postMessage({ channel, text: "reply", thread_ts: root.ts ?? "", metadata });
      await client.chat.postMessage({ channel, text: "plain" });

      const bare = await client.conversations.history({ channel });
      expect(bare.messages?.map((m) => m.text)).toEqual(["plain", "root"]);
      expect(bare.messages?.some((m) => "metadata" in m)).toBe(false);
      const full = await client.conversations.history({ channel, include_all_metadata: true });
      expect(full.messages?.[1]?.metadata).toEqual(metadata);

      const thread = await client.conversations.replies({
        channel,
        ts: root.ts ?? "",
        include_all_metadata: true,
      });
      expect(thread.messages?.map((m) => m.text)).toEqual(["root", "reply"]);
      expect(thread.messages?.[1]?.metadata).toEqual(metadata);
      expect(await slackErrorOf(client.conversations.replies({ channel, ts: "1.000001" }))).toBe(
        "thread_not_found",
      );
      expect(
        await slackErrorOf(
          client.chat.postMessage({ channel, text: "x", metadata: { event_type: "", event_payload: {} } }),
        ),
      ).toBe("invalid_metadata_format");
    });
  });

  test("oldest and latest bound the range; at most 15 a page, with a cursor for the rest", async () => {
    await withEmulator({ rateLimits: false }, async (emulator) => {
      const client = clientFor(emulator);
      const posted: string[] = [];
      for (let i = 0; i < 20; i++)
        posted.push((await client.chat.postMessage({ channel, text: `m${i}` })).ts ?? "");
      const first = await client.conversations.history({ channel, limit: 100 });
      expect(first.messages).toHaveLength(15);
      expect(first.has_more).toBe(true);
      const rest = await client.conversations.history({
        channel,
        cursor: first.response_metadata?.next_cursor ?? "",
      });
      expect(rest.messages?.map((m) => m.text)).toEqual(["m4", "m3", "m2", "m1", "m0"]);
      const range = await client.conversations.history({
        channel,
        oldest: posted[2] ?? "",
        latest: posted[4] ?? "",
        inclusive: true,
      });
      expect(range.messages?.map((m) => m.text)).toEqual(["m4", "m3", "m2"]);
    });
  });
});
