import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  slackBotEvents,
  slackBotScopes,
  slackMethodScopes,
  slackSlashCommands,
} from "../../src/adapters/slack/slack-api.ts";

const root = new URL("../../", import.meta.url).pathname;
const manifest = parse(readFileSync(join(root, "manifests/slack/app-manifest.yaml"), "utf8")) as {
  display_information: { name: string };
  features: { slash_commands: Array<{ command: string; url: string; description: string }> };
  oauth_config: { scopes: { bot: string[] } };
  settings: {
    event_subscriptions: { request_url: string; bot_events: string[] };
    interactivity: { is_enabled: boolean; request_url: string };
    socket_mode_enabled: boolean;
  };
};
const adapterDir = join(root, "src/adapters/slack");
const adapterSource = readdirSync(adapterDir)
  .filter((f) => f.endsWith(".ts"))
  .map((f) => readFileSync(join(adapterDir, f), "utf8"))
  .join("\n");

describe("Slack app manifest", () => {
  it("lists exactly the slash commands the adapter registers", () => {
    expect(manifest.features.slash_commands.map((c) => c.command).sort()).toEqual(
      [...slackSlashCommands].sort(),
    );
    for (const c of manifest.features.slash_commands) {
      expect(c.command.length).toBeLessThanOrEqual(32);
      expect(c.url.endsWith("/slack/events")).toBe(true);
    }
  });

  it("requests exactly the bot scopes the code uses", () => {
    expect([...manifest.oauth_config.scopes.bot].sort()).toEqual(slackBotScopes());
  });

  it("subscribes to exactly the events the adapter listens to, on the one endpoint", () => {
    expect(manifest.settings.event_subscriptions.bot_events.sort()).toEqual(
      Object.keys(slackBotEvents).sort(),
    );
    expect(manifest.settings.event_subscriptions.request_url.endsWith("/slack/events")).toBe(true);
    expect(manifest.settings.interactivity).toMatchObject({ is_enabled: true });
    expect(manifest.settings.interactivity.request_url.endsWith("/slack/events")).toBe(true);
    expect(typeof manifest.settings.socket_mode_enabled).toBe("boolean");
    expect(manifest.display_information.name.length).toBeLessThanOrEqual(35);
  });

  it("the adapter calls Slack only through methods in the scope table, and uses each of them", () => {
    const called = new Set(
      [...adapterSource.matchAll(/callSlack\(\s*\w+,\s*"([a-zA-Z.]+)"/g)].map((m) => m[1]),
    );
    // auth.test is called by Bolt's init, not by name in our code.
    const declared = Object.keys(slackMethodScopes).filter((m) => m !== "auth.test");
    expect([...called].sort()).toEqual(declared.sort());
    // No other way to reach the Web API from the adapter.
    expect(adapterSource).not.toMatch(/client\.(chat|usergroups|users|conversations|views)\./);
    expect([...adapterSource.matchAll(/\.apiCall\(/g)]).toHaveLength(1);
  });

  it("listens for each registered event", () => {
    for (const event of Object.keys(slackBotEvents)) expect(adapterSource).toContain(`app.event("${event}"`);
  });
});
