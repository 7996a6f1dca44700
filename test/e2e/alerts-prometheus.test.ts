/**
 * Alerts end to end: a real Prometheus scrapes a gauge this test flips, fires a rule, a real Alertmanager
 * delivers the webhook (with its bearer token) to shipbot's route; the card appears in the Slack emulator
 * through the real Slack adapter, resolves in place when the gauge flips back, and the Silence button
 * creates a silence that amtool lists.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSlackAdapter, type SlackAdapter, slackGroupIdsOf } from "../../src/adapters/slack/index.ts";
import { computeSlackSignature } from "../../src/adapters/slack/verify-slack-signature.ts";
import { alertsConfigSchema } from "../../src/alerts/alerts-config.ts";
import { createAlertActionHandler, isAlertAction } from "../../src/alerts/create-alert-action-handler.ts";
import { createAlertCardSource } from "../../src/alerts/create-alert-card-source.ts";
import { createAlertInbox } from "../../src/alerts/create-alert-inbox.ts";
import { createAlertsRoute } from "../../src/alerts/create-alerts-route.ts";
import { type AlertProcessor, startAlertProcessor } from "../../src/alerts/start-alert-processor.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";
import { type SlackEmulator, type SlackMessage, startSlackEmulator } from "../emulators/slack/index.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import {
  type AlertingStack,
  alertmanagerBinary,
  prometheusBinary,
  runAmtool,
  startAlertingStack,
} from "../helpers/prometheus.ts";
import { quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";

const installed = existsSync(prometheusBinary) && existsSync(alertmanagerBinary);
const signingSecret = `test-secret-${randomBytes(8).toString("hex")}`;
const botToken = "xoxb-test-token";
const webhookToken = `am-${randomBytes(12).toString("hex")}`;
const timeScale = 0.05;
const channel = "C0ALERTS";
const sre = { id: "U0SRE00001", name: "sre-1" };

let slack: SlackEmulator;
let runtime: Runtime;
let adapter: SlackAdapter;
let server: Server;
let metricsServer: Server;
let stack: AlertingStack;
let processor: AlertProcessor;
let redis: Redis;
let baseUrl: string;
let errorRatio = 0;
const alerts = alertsConfigSchema.parse({ default: [{ platform: "slack", channel }], updateDelayMs: 100 });
// Also given to the runtime, which (once wired) runs its own processor on the same inbox.
const config = Object.assign(testConfig(), { alerts });

beforeAll(async () => {
  if (!installed) return;
  slack = await startSlackEmulator({
    botToken,
    timeScale,
    users: [sre],
    channels: [channel],
    // The example configuration grants roles to these groups; the adapter looks them up.
    usergroups: ["S0SRE", "S0DEVELOPERS", "S0EVERYONE"].map((id) => ({
      id,
      handle: id.slice(2).toLowerCase(),
      users: [],
    })),
  });
  redis = new Redis(redisUrl);
  let handlers: Pick<Runtime, "handle" | "handleAction"> | undefined;
  let alertActions: ReturnType<typeof createAlertActionHandler> | undefined;
  adapter = createSlackAdapter({
    signingSecret,
    botToken,
    apiUrl: `${slack.url}/api/`,
    handle: (command) => (handlers as Runtime).handle(command),
    handleAction: (action) =>
      isAlertAction(action.action)
        ? (alertActions as ReturnType<typeof createAlertActionHandler>)(action)
        : (handlers as Runtime).handleAction(action),
    log: quietLog,
    groupIds: slackGroupIdsOf(config),
    pace: { postIntervalMs: 1100 * timeScale, updateIntervalMs: 1250 * timeScale },
  });
  runtime = await createRuntime({
    config,
    redisUrl,
    executor: createGatedExecutor().executor,
    chats: { slack: adapter.chat },
    log: quietLog,
    accept: true,
    work: false,
    notify: true,
    cardSources: [
      createAlertCardSource({
        redis,
        keys: { prefix: config.redisPrefix },
        config: alerts,
        history: (service, env, n) => runtime.status.history(service, env, n),
      }),
    ],
  });
  handlers = runtime;
  processor = startAlertProcessor({ redis, keys: runtime.keys, config: alerts, log: quietLog });
  await adapter.start();
  server = createHttpServer({
    log: quietLog,
    ready: async () => ({ ok: true, reasons: [] }),
    routes: {
      ...adapter.routes,
      "POST /hooks/alertmanager": createAlertsRoute({
        token: webhookToken,
        ingest: createAlertInbox(runtime.redis, runtime.keys).push,
        log: quietLog,
      }),
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  metricsServer = createServer((_req, res) => {
    const body = `# HELP shipbot_e2e_error_ratio Share of failing requests.\n# TYPE shipbot_e2e_error_ratio gauge\nshipbot_e2e_error_ratio ${errorRatio}\n`;
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body);
  });
  await new Promise<void>((resolve) => metricsServer.listen(0, "127.0.0.1", resolve));

  stack = await startAlertingStack({
    scrapeTarget: `127.0.0.1:${(metricsServer.address() as AddressInfo).port}`,
    webhookUrl: `${baseUrl}/hooks/alertmanager`,
    webhookToken,
    rules: [
      "groups:",
      "  - name: shipbot-e2e",
      "    rules:",
      "      - alert: HighErrorRate",
      "        expr: shipbot_e2e_error_ratio > 0.05",
      "        for: 1s",
      "        labels: { severity: critical, service: api, env: production }",
      '        annotations: { summary: "5xx above 5%" }',
      "",
    ].join("\n"),
  });
  alertActions = createAlertActionHandler({
    redis,
    keys: runtime.keys,
    config,
    alerts,
    handle: (command) => runtime.handle(command),
    alertmanagerUrl: stack.alertmanagerUrl,
    log: quietLog,
  });
});

afterAll(async () => {
  if (!installed) return;
  await stack?.stop();
  await processor?.close();
  await adapter?.stop();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await new Promise((resolve) => metricsServer?.close(resolve));
  await runtime?.close();
  if (redis) {
    await cleanupPrefix(redis, config.redisPrefix);
    await redis.quit();
  }
  await slack?.close();
});

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 25_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${stack.output()}`);
    await sleep(100);
  }
}

interface Button {
  action_id: string;
  value: string;
}

function buttonsOf(message: SlackMessage): Button[] {
  return (message.blocks ?? []).flatMap((block) => {
    const b = block as { type: string; elements?: Button[] };
    return b.type === "actions" ? (b.elements ?? []) : [];
  });
}

async function click(message: SlackMessage, actionId: string): Promise<void> {
  const button = buttonsOf(message).find((b) => b.action_id === actionId);
  if (!button) throw new Error(`no button ${actionId} on the card`);
  const payload = {
    type: "block_actions",
    user: { id: sre.id, username: sre.name, name: sre.name, team_id: "T0EMULATED" },
    api_app_id: "A0SHIPBOT",
    token: "legacy-verification-token",
    container: { type: "message", message_ts: message.ts, channel_id: channel, is_ephemeral: false },
    trigger_id: slack.triggerId(sre.id),
    team: { id: "T0EMULATED", domain: "emulated" },
    channel: { id: channel, name: channel.toLowerCase() },
    message: {
      type: "message",
      user: slack.botUserId,
      ts: message.ts,
      text: message.text,
      blocks: message.blocks,
    },
    actions: [
      {
        action_id: button.action_id,
        block_id: "b1",
        text: { type: "plain_text", text: "Silence", emoji: true },
        value: button.value,
        type: "button",
        action_ts: `${Date.now() / 1000}`,
      },
    ],
  };
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const timestamp = String(Math.floor(Date.now() / 1000));
  const res = await fetch(`${baseUrl}/slack/events`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-slack-request-timestamp": timestamp,
      "x-slack-signature": computeSlackSignature(signingSecret, timestamp, body),
    },
    body,
  });
  expect(res.status).toBe(200);
}

const alertCards = () => slack.messages(channel).filter((m) => m.text.includes("HighErrorRate"));

describe.skipIf(!installed)("Prometheus → Alertmanager → shipbot → Slack", () => {
  it("posts a card when the rule fires, resolves it in place, and silences from the button", async () => {
    const incidents = `${config.redisPrefix}:{ops}:incidents`;
    errorRatio = 0.5;
    const card = await until("the alert card", () => alertCards()[0]);
    expect(card.text).toContain("[critical] HighErrorRate api/production");
    expect(buttonsOf(card).map((b) => b.action_id)).toEqual(["shipbot:alert-ack", "shipbot:alert-silence"]);
    expect(await redis.hget(incidents, "api:production")).toContain("HighErrorRate");

    errorRatio = 0;
    const resolved = await until("the card resolved in place", () => {
      const m = slack.message(channel, card.ts);
      return m?.text.includes("resolved at") ? m : undefined;
    });
    expect(buttonsOf(resolved)).toEqual([]);
    await until("incident mode cleared", async () =>
      (await redis.hexists(incidents, "api:production")) ? undefined : true,
    );

    // Firing again edits the same message back to firing (one card per group and channel).
    errorRatio = 0.5;
    const again = await until("the card firing again", () => {
      const m = slack.message(channel, card.ts);
      return m && !m.text.includes("resolved at") ? m : undefined;
    });
    // Alertmanager mutes resolved notifications of silenced alerts too, so Silence comes last here.
    await click(again, "shipbot:alert-silence");
    const silenced = await until("the silence on the card", () => {
      const m = slack.message(channel, card.ts);
      return m?.text.includes("Silenced by sre-1") ? m : undefined;
    });
    const id = /silence ([0-9a-f-]{36})/.exec(silenced.text)?.[1];
    expect(id).toBeDefined();
    const listed = await runAmtool([
      "silence",
      "query",
      `--alertmanager.url=${stack.alertmanagerUrl}`,
      "-o",
      "json",
    ]);
    const found = (
      JSON.parse(listed) as Array<{ id: string; matchers: Array<{ name: string; value: string }> }>
    ).find((s) => s.id === id);
    expect(found?.matchers).toContainEqual(expect.objectContaining({ name: "service", value: "api" }));
    expect(alertCards()).toHaveLength(1);
    expect(slack.rateLimited()).toBe(0);
  });
});
