import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { classifySlackBody } from "../../src/adapters/slack/classify-slack-body.ts";
import { createGroupResolver, slackGroupIdsOf } from "../../src/adapters/slack/create-group-resolver.ts";
import { toSlackError } from "../../src/adapters/slack/create-slack-chat.ts";
import { fromMention, fromSlackText, fromSlashCommand } from "../../src/adapters/slack/to-chat-command.ts";
import { isShipbotError } from "../../src/core/errors.ts";
import { isChatRateLimitedError } from "../../src/notify/chat-port.ts";
import { loadExampleConfig } from "../helpers/example-config.ts";

const log = pino({ level: "silent" });
const form = "application/x-www-form-urlencoded";

describe("command text", () => {
  it("turns slash commands into command text", () => {
    expect(fromSlashCommand("/deploy", "api staging v2")).toBe("deploy api staging v2");
    expect(fromSlashCommand("/shipbot", " status api ")).toBe("status api");
    expect(fromSlashCommand("/shipbot", "")).toBe("help");
    expect(fromSlashCommand("/rollback", "")).toBe("rollback");
  });

  it("strips the bot's mention and Slack's formatting", () => {
    expect(fromMention("<@U0SHIPBOT> deploy api staging v2", "U0SHIPBOT")).toBe("deploy api staging v2");
    expect(fromMention("hey <@U0SHIPBOT>  status api", "U0SHIPBOT")).toBe("status api");
    expect(fromMention("<@U0SHIPBOT>", "U0SHIPBOT")).toBe("help");
    expect(fromMention("<@U0OTHER|x> whoami", undefined)).toBe("whoami");
    expect(fromSlackText("deploy api staging <http://v2.example.com|v2.example.com>")).toBe(
      "deploy api staging v2.example.com",
    );
    expect(fromSlackText("lock api staging &lt;because&gt; a &amp; b")).toBe(
      "lock api staging <because> a & b",
    );
  });

  it("takes the request from before the bot's mention when nothing follows it", () => {
    expect(fromMention("status api <@U0SHIPBOT>", "U0SHIPBOT")).toBe("status api");
    expect(fromMention("deploy web staging v2 <@U0SHIPBOT>\u00a0", "U0SHIPBOT")).toBe(
      "deploy web staging v2",
    );
    expect(fromMention("<@U0OTHER> whoami <@U0SHIPBOT>", "U0SHIPBOT")).toBe("whoami");
    expect(fromMention("<@U0OTHER> <@U0SHIPBOT>", "U0SHIPBOT")).toBe("help");
  });

  it("knows the bot's mention when Slack adds its name to it", () => {
    expect(fromMention("hey <@U0SHIPBOT|shipbot> status api", "U0SHIPBOT")).toBe("status api");
    expect(fromMention("queue staging <@U0SHIPBOT|shipbot>", "U0SHIPBOT")).toBe("queue staging");
    expect(fromMention("<@U0SHIPBOT|shipbot> lock api staging for <@U0OTHER|ada>", "U0SHIPBOT")).toBe(
      "lock api staging for ada",
    );
  });
});

describe("classifySlackBody", () => {
  const slash = (extra: Record<string, string>) =>
    new URLSearchParams({ user_id: "U1", channel_id: "C1", trigger_id: "t", text: "", ...extra }).toString();

  it("recognises what Slack sends", () => {
    expect(classifySlackBody(form, slash({ command: "/deploy" }))).toEqual({
      kind: "command",
      command: "/deploy",
    });
    expect(classifySlackBody(`${form}; charset=utf-8`, slash({ command: "/other" }))).toEqual({
      kind: "unknown_command",
      command: "/other",
    });
    const payload = JSON.stringify({ type: "block_actions", user: { id: "U1" }, actions: [] });
    expect(classifySlackBody(form, new URLSearchParams({ payload }).toString())).toEqual({
      kind: "interaction",
      type: "block_actions",
    });
    // A workspace outside Enterprise Grid: Slack sends `"enterprise": null` with every click.
    const plain = JSON.stringify({
      type: "block_actions",
      user: { id: "U1" },
      team: { id: "T1", domain: "acme" },
      enterprise: null,
      is_enterprise_install: false,
      actions: [{ action_id: "shipbot:approve", value: "j1" }],
    });
    expect(classifySlackBody(form, new URLSearchParams({ payload: plain }).toString())).toEqual({
      kind: "interaction",
      type: "block_actions",
    });
    expect(
      classifySlackBody(form, new URLSearchParams({ payload: '{"type":"view_closed"}' }).toString()),
    ).toEqual({
      kind: "ignored",
      type: "view_closed",
    });
    expect(classifySlackBody("application/json", '{"type":"url_verification","challenge":"c"}')).toEqual({
      kind: "url_verification",
    });
    expect(
      classifySlackBody("application/json", '{"type":"event_callback","event":{"type":"app_mention"}}'),
    ).toEqual({ kind: "event", type: "app_mention" });
    expect(classifySlackBody(form, "ssl_check=1&token=x")).toEqual({ kind: "ssl_check" });
  });

  it("calls anything else malformed", () => {
    const bad: Array<[string | undefined, string]> = [
      ["application/json", "null"],
      ["application/json", "[1]"],
      ["application/json", "{"],
      ["application/json", '{"type":"url_verification"}'],
      ["application/json", '{"type":"event_callback","event":null}'],
      [form, "payload=%7B"],
      [form, "payload=null"],
      [form, `payload=${encodeURIComponent('{"type":"block_actions"}')}`],
      [form, "payload=%7B%7D&payload=%7B%7D"],
      [form, slash({ command: "deploy" })],
      [form, "command=%2Fdeploy&text=x"],
      [form, "hello=world"],
      [form, ""],
      ["text/plain", "command=/deploy"],
      [undefined, "{}"],
    ];
    for (const [type, body] of bad)
      expect(classifySlackBody(type, body).kind, `${type} ${body}`).toBe("malformed");
  });
});

describe("group resolver", () => {
  it("collects the Slack groups the config mentions", () => {
    expect(slackGroupIdsOf(loadExampleConfig())).toEqual(["S0DEVELOPERS", "S0EVERYONE", "S0SRE"]);
  });

  it("caches member lists for the TTL, then sees removals", async () => {
    let now = 0;
    const members: Record<string, string[]> = { S0SRE: ["U1"], S0DEV: ["U1", "U2"] };
    const calls: string[] = [];
    const groups = createGroupResolver({
      groupIds: ["slack:S0SRE", "S0DEV", "teams:abc"],
      listMembers: async (id) => {
        calls.push(id);
        return members[id] ?? [];
      },
      ttlMs: 1000,
      now: () => now,
      log,
    });
    expect(await Promise.all([groups.groupsOf("U1"), groups.groupsOf("U2")])).toEqual([
      ["slack:S0SRE", "slack:S0DEV"],
      ["slack:S0DEV"],
    ]);
    expect(calls).toEqual(["S0SRE", "S0DEV"]);
    members.S0SRE = [];
    now = 999;
    expect(await groups.groupsOf("U1")).toEqual(["slack:S0SRE", "slack:S0DEV"]);
    now = 1000;
    expect(await groups.groupsOf("U1")).toEqual(["slack:S0DEV"]);
    expect(calls).toHaveLength(4);
  });

  it("fails closed when a list cannot be read, and asks again later", async () => {
    let now = 0;
    let fail = false;
    const groups = createGroupResolver({
      groupIds: ["S0SRE"],
      listMembers: async () => {
        if (fail) throw new Error("boom");
        return ["U1"];
      },
      ttlMs: 1000,
      retryAfterFailureMs: 500,
      now: () => now,
      log,
    });
    expect(await groups.groupsOf("U1")).toEqual(["slack:S0SRE"]);
    fail = true;
    now = 1000;
    expect(await groups.groupsOf("U1")).toEqual([]);
    fail = false;
    now = 1200;
    expect(await groups.groupsOf("U1")).toEqual([]);
    now = 1500;
    expect(await groups.groupsOf("U1")).toEqual(["slack:S0SRE"]);
  });
});

describe("toSlackError", () => {
  it("turns 429 into the notifier's rate-limit signal", () => {
    const error = toSlackError("chat.update", { code: "slack_webapi_rate_limited_error", retryAfter: 3 });
    expect(isChatRateLimitedError(error) && error.retryAfterMs).toBe(3000);
  });

  it("says how to fix what a person must fix, without the token", () => {
    const platform = (e: string) =>
      toSlackError(
        "chat.postMessage",
        { code: "slack_webapi_platform_error", data: { ok: false, error: e } },
        "C1",
      );
    const notIn = platform("not_in_channel");
    expect(notIn.message).toContain("/invite @shipbot");
    expect(notIn.message).toContain("C1");
    expect(isShipbotError(notIn) && notIn.retryable).toBe(false);
    expect(platform("channel_not_found").message).toContain("invite the bot");
    expect(platform("invalid_auth").message).toContain("SLACK_BOT_TOKEN");
    const transient = toSlackError("chat.update", { code: "slack_webapi_http_error", statusCode: 503 });
    expect(isShipbotError(transient) && transient.retryable).toBe(true);
  });
});
