/**
 * Alerts against real Redis: the webhook route (auth, validation, size), the inbox and processor
 * (redelivery, grouping, routing, incident mode), alert cards through the real notifier, and the buttons.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAlertKeys, toAlertCardId } from "../../src/alerts/alert-keys.ts";
import type { WebhookPayload } from "../../src/alerts/alertmanager-payload.ts";
import { type AlertsConfig, alertsConfigSchema } from "../../src/alerts/alerts-config.ts";
import { createAlertActionHandler } from "../../src/alerts/create-alert-action-handler.ts";
import { createAlertCardSource } from "../../src/alerts/create-alert-card-source.ts";
import { createAlertInbox } from "../../src/alerts/create-alert-inbox.ts";
import { createAlertsRoute } from "../../src/alerts/create-alerts-route.ts";
import { type AlertProcessor, startAlertProcessor } from "../../src/alerts/start-alert-processor.ts";
import type { ChatAction } from "../../src/app/handle-action.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Card } from "../../src/core/card.ts";
import type { ChatCommand, ChatUser, Conversation } from "../../src/core/model.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";
import type { ChatPort } from "../../src/notify/chat-port.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { createKeys } from "../../src/queue/keys.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";

const token = `am-${randomBytes(12).toString("hex")}`;
const sre: ChatUser = { id: "slack:U0SRE00001", name: "sre-1", groups: [] };
const nobody: ChatUser = { id: "slack:U0NOBODY01", name: "nobody", groups: [] };

interface Message {
  ref: string;
  channel: string;
  versions: Card[];
}

/** A chat platform that remembers every post and edit per channel. */
function createChannelChat(): ChatPort & { messages: Message[]; calls: string[] } {
  const messages: Message[] = [];
  const calls: string[] = [];
  return {
    messages,
    calls,
    async post(conversation, card) {
      const ref = `m${messages.length + 1}`;
      messages.push({ ref, channel: conversation.channel, versions: [card] });
      calls.push(`post ${conversation.channel}`);
      return ref;
    },
    async update(conversation, ref, card) {
      const message = messages.find((m) => m.ref === ref);
      if (!message) throw new Error(`update of unknown message ${ref}`);
      message.versions.push(card);
      calls.push(`update ${conversation.channel}`);
    },
  };
}

const alerts: AlertsConfig = alertsConfigSchema.parse({
  routes: [
    { match: { team: "payments" }, channels: [{ platform: "shell", channel: "payments" }] },
    {
      match: { service: { regex: "api|web" } },
      channels: [{ platform: "shell", channel: "ops" }],
    },
  ],
  default: [{ platform: "shell", channel: "alerts" }],
  correlationWindowMinutes: 60,
  incidentSeverity: "critical",
  updateDelayMs: 50,
});

let redis: Redis;
let runtime: Runtime;
let processor: AlertProcessor;
let server: Server;
let amServer: Server;
let baseUrl: string;
const chat = createChannelChat();
// Also given to the runtime, which (once wired) runs its own processor on the same inbox.
const config = Object.assign(testConfig(), { alerts });
const silences: unknown[] = [];
const handled: ChatCommand[] = [];
// Shared by the runtime's alert processor and the test's: either may take an inbox entry.
const metrics = createMetrics({ commandNames: [], processMetrics: false });
let handleAlertAction: (action: ChatAction) => ReturnType<Runtime["handleAction"]>;

beforeAll(async () => {
  redis = new Redis(redisUrl);
  const history = (service: string, env: string, n: number) => runtime.status.history(service, env, n);
  runtime = await createRuntime({
    config,
    redisUrl,
    executor: createGatedExecutor().executor,
    chats: { shell: chat },
    log: quietLog,
    accept: true,
    work: false,
    notify: true,
    metrics,
    cardSources: [
      createAlertCardSource({ redis, keys: { prefix: config.redisPrefix }, config: alerts, history }),
    ],
  });
  processor = startAlertProcessor({ redis, keys: runtime.keys, config: alerts, log: quietLog, metrics });
  server = createHttpServer({
    log: quietLog,
    ready: async () => ({ ok: true, reasons: [] }),
    routes: {
      "POST /hooks/alertmanager": createAlertsRoute({
        token,
        maxBodyBytes: 64 * 1024,
        ingest: createAlertInbox(redis, runtime.keys).push,
        log: quietLog,
      }),
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Alertmanager's silences endpoint, recording what shipbot sends.
  amServer = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => {
      text += c.toString();
    });
    req.on("end", () => {
      silences.push({ method: req.method, url: req.url, body: JSON.parse(text) });
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ silenceID: "s-123" }));
    });
  });
  await new Promise<void>((resolve) => amServer.listen(0, "127.0.0.1", resolve));
  handleAlertAction = createAlertActionHandler({
    redis,
    keys: runtime.keys,
    config,
    alerts,
    handle: async (command) => {
      handled.push(command);
      return runtime.handle(command);
    },
    alertmanagerUrl: `http://127.0.0.1:${(amServer.address() as AddressInfo).port}`,
    audit: runtime.audit,
    log: quietLog,
  });
});

afterAll(async () => {
  await processor?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await new Promise((resolve) => amServer?.close(resolve));
  await runtime?.close();
  await cleanupPrefix(redis, config.redisPrefix);
  await redis.quit();
});

// ---- helpers ----------------------------------------------------------------------------------------

let groups = 0;
function alert(
  fingerprint: string,
  labels: Record<string, string>,
  status: "firing" | "resolved" = "firing",
  startsAt = "2026-11-23T14:02:05.697525988Z",
): WebhookPayload["alerts"][number] {
  return {
    status,
    labels,
    annotations: { summary: `summary of ${fingerprint}` },
    startsAt,
    endsAt: status === "resolved" ? "2026-11-23T14:30:00.1Z" : "0001-01-01T00:00:00Z",
    generatorURL: "http://prometheus.local/graph",
    fingerprint,
  };
}

function payload(
  groupKey: string,
  common: Record<string, string>,
  list: WebhookPayload["alerts"],
): WebhookPayload {
  return {
    version: "4",
    groupKey,
    truncatedAlerts: 0,
    status: list.some((a) => a.status === "firing") ? "firing" : "resolved",
    receiver: "shipbot",
    groupLabels: { alertname: common.alertname ?? "X" },
    commonLabels: common,
    commonAnnotations: {},
    externalURL: "http://alertmanager.local",
    alerts: list,
  };
}

function newGroupKey(name: string): string {
  groups++;
  return `{}:{alertname="${name}-${groups}-${randomBytes(3).toString("hex")}"}`;
}

async function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${baseUrl}/hooks/alertmanager`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function cardOf(groupKey: string, channel: string): Message | undefined {
  const cardId = toAlertCardId(groupKey, "shell", channel);
  return chat.messages.find((m) => m.versions.some((v) => v.footer?.includes(cardId)));
}

const latest = (m: Message): Card => m.versions[m.versions.length - 1] as Card;
const textOf = (card: Card) => [card.title, ...card.lines].join("\n");

/** `shipbot_alerts_deduplicated_total` as a scrape would show it. */
async function deduplicated(): Promise<number> {
  return (await metrics.alertsDeduplicated.get()).values[0]?.value ?? 0;
}

async function inboxIdle(): Promise<void> {
  const { inbox } = createAlertKeys(runtime.keys);
  await until("inbox drained", async () => ((await redis.xlen(inbox)) === 0 ? true : undefined));
  // The notifier renders marked cards after their delay; wait until none is pending.
  await until("cards rendered", async () =>
    (await redis.zcard(runtime.keys.cards)) + (await redis.zcard(runtime.keys.cardsInflight)) === 0
      ? true
      : undefined,
  );
}

function click(action: string, groupKey: string, channel: string, user: ChatUser = sre): ChatAction {
  const conversation: Conversation = { platform: "shell", channel };
  return {
    id: `click-${randomBytes(4).toString("hex")}`,
    user,
    conversation,
    action,
    value: toAlertCardId(groupKey, "shell", channel),
    receivedAt: Date.now(),
  };
}

// ---- tests ------------------------------------------------------------------------------------------

describe("POST /hooks/alertmanager", () => {
  it("rejects missing or wrong tokens, malformed, wrongly versioned and oversized bodies, storing nothing", async () => {
    const { inbox } = createAlertKeys(runtime.keys);
    const good = payload(newGroupKey("Auth"), { alertname: "Auth" }, [alert("f1", { alertname: "Auth" })]);
    const noAuth = await fetch(`${baseUrl}/hooks/alertmanager`, {
      method: "POST",
      body: JSON.stringify(good),
    });
    expect(noAuth.status).toBe(401);
    expect(noAuth.headers.get("www-authenticate")).toBe("Bearer");
    expect((await post(good, { authorization: `Bearer ${token}x` })).status).toBe(401);
    expect((await post(good, { authorization: `Basic ${token}` })).status).toBe(401);
    expect((await post("{not json")).status).toBe(400);
    const v3 = await post({ ...good, version: "3" });
    expect(v3.status).toBe(400);
    expect(await v3.text()).toContain('expected \\"4\\"');
    const missing = await post({ ...good, alerts: [{ status: "firing" }] });
    expect(missing.status).toBe(400);
    expect(await missing.text()).toContain("alerts.0");
    const huge = payload(good.groupKey, { alertname: "Auth" }, [
      { ...alert("f1", { alertname: "Auth" }), annotations: { summary: "x".repeat(4000) } },
    ]);
    huge.alerts = Array.from({ length: 40 }, (_, i) => ({
      ...(huge.alerts[0] as WebhookPayload["alerts"][number]),
      fingerprint: `f${i}`,
    }));
    expect((await post(huge)).status).toBe(413);
    expect(await redis.exists(inbox)).toBe(1); // created by the processor's group, but empty
    expect(await redis.xlen(inbox)).toBe(0);
    expect(chat.messages.filter((m) => latest(m).title.includes("Auth"))).toHaveLength(0);
  });

  it("shows alerts with a long rule expression and long annotations, as Prometheus sends them", async () => {
    // Prometheus puts the rule's whole expression, URL-encoded, in generatorURL; descriptions are
    // templates that may list many series. A 400 would be final: the group would never be shown.
    const expr = encodeURIComponent(
      `sum by (service) (rate(http_requests_total{code=~"5..",path!~"/health|/metrics"}[5m])) > 0.05 or ${"x".repeat(3000)}`,
    );
    const key = newGroupKey("LongRule");
    const common = { alertname: "LongRule", severity: "warning" };
    const long = {
      ...alert("l1", { ...common, instance: "n1" }),
      annotations: { summary: `5xx above 5% on ${"pod-a, ".repeat(800)}`, runbook: "r".repeat(5000) },
      generatorURL: `http://prometheus.local/graph?g0.expr=${expr}&g0.tab=1`,
    };
    const body = { ...payload(key, common, [long]), commonAnnotations: long.annotations };
    const res = await post(body);
    expect(res.status).toBe(200);
    const card = await until("the long rule's card", () => cardOf(key, "alerts"));
    const line = latest(card).lines.find((l) => l.includes("{instance=n1}")) ?? "";
    // Clipped for the card, not refused.
    expect(line).toContain("· 5xx above 5% on pod-a, pod-a,");
    expect(line.length).toBeLessThan(300);
  });
});

describe("the alert inbox", () => {
  it("drops an entry it cannot read and goes on with the notifications after it", async () => {
    const { inbox } = createAlertKeys(runtime.keys);
    const key = newGroupKey("AfterBadEntry");
    const common = { alertname: "AfterBadEntry", severity: "warning" };
    const good = JSON.stringify(payload(key, common, [alert("b1", { ...common, instance: "n1" })]));
    // What another version of shipbot might have written during a rolling upgrade, stored in one
    // transaction with a good notification so that one reader gets them all in one batch.
    await redis
      .multi()
      .xadd(inbox, "*", "p", good.slice(0, 40)) // not JSON
      .xadd(inbox, "*", "v", "2", "payload", good) // another field name
      .xadd(inbox, "*", "p", JSON.stringify({ version: "5" })) // another shape
      .xadd(inbox, "*", "p", good)
      .exec();
    const card = await until("the card of the notification after the bad entries", () =>
      cardOf(key, "alerts"),
    );
    expect(textOf(latest(card))).toContain("1 firing");
    // The bad entries are gone rather than pending for ever.
    await inboxIdle();
    expect(await redis.xpending(inbox, "alerts")).toEqual([0, null, null, null]);
  });
});

describe("alert groups", () => {
  it("keeps one card per group: updates it, ignores redeliveries and repeats, resolves it in place", async () => {
    const key = newGroupKey("DiskFull");
    const common = { alertname: "DiskFull", severity: "warning" };
    const first = payload(key, common, [
      alert("d1", { ...common, instance: "n1" }),
      alert("d2", { ...common, instance: "n2" }),
    ]);
    expect((await post(first)).status).toBe(200);
    const card = await until("the group's card", () => cardOf(key, "alerts"));
    await inboxIdle();
    expect(textOf(latest(card))).toContain("2 firing");
    expect(latest(card).title).toMatch(/^🔥 \[warning\] DiskFull · firing since 14:02/);
    expect(latest(card).lines.join("\n")).toContain("{instance=n1} since 14:02 · summary of d1");
    const versions = card.versions.length;
    const repeatsBefore = await deduplicated();

    // Alertmanager retries on 5xx and repeats every repeat_interval: the same content changes nothing.
    expect((await post(first)).status).toBe(200);
    expect((await post(first)).status).toBe(200);
    await inboxIdle();
    expect(card.versions.length).toBe(versions);
    expect(await processor.process(first)).toEqual({ changed: 0, created: 0 });
    // Three deliveries of the same two alerts, each counted as dropped.
    expect((await deduplicated()) - repeatsBefore).toBe(3 * 2);

    const third = payload(key, common, [...first.alerts, alert("d3", { ...common, instance: "n3" })]);
    await post(third);
    await until("3 firing", () => (textOf(latest(card)).includes("3 firing") ? true : undefined));

    const resolved = payload(
      key,
      common,
      third.alerts.map((a) => ({ ...a, status: "resolved" as const, endsAt: "2026-11-23T14:30:00Z" })),
    );
    await post(resolved);
    await until("resolved", () => (latest(card).tone === "success" ? true : undefined));
    expect(latest(card).title).toMatch(/^✅ \[warning\] DiskFull · resolved at 14:30/);
    expect(latest(card).actions).toEqual([]);
    // A late copy of the firing notification does not bring a resolved alert back: its three alerts are dropped.
    const lateBefore = await deduplicated();
    await post(third);
    await inboxIdle();
    expect(latest(card).tone).toBe("success");
    expect((await deduplicated()) - lateBefore).toBe(3);
    const cardId = toAlertCardId(key, "shell", "alerts");
    expect(chat.messages.filter((m) => m.versions.some((v) => v.footer?.includes(cardId)))).toHaveLength(1);
  });

  it("counts the alerts Alertmanager left out (max_alerts), across resends of the group", async () => {
    const key = newGroupKey("PodCrashLooping");
    const common = { alertname: "PodCrashLooping", severity: "warning" };
    const sent = [alert("t1", { ...common, pod: "p1" }), alert("t2", { ...common, pod: "p2" })];
    // A receiver with max_alerts: 2 and 14 alerts in the group.
    const first = { ...payload(key, common, sent), truncatedAlerts: 12 };
    await post(first);
    const card = await until("the truncated group's card", () => cardOf(key, "alerts"));
    await inboxIdle();
    expect(textOf(latest(card))).toContain("2 firing");
    expect(textOf(latest(card))).toContain("+ 12 more not sent by Alertmanager");

    // The repeat_interval resend changes nothing and keeps the count.
    const versions = card.versions.length;
    await post(first);
    await inboxIdle();
    expect(card.versions.length).toBe(versions);
    expect(textOf(latest(card))).toContain("+ 12 more not sent by Alertmanager");

    // Two more alerts fire beyond the cut: the alerts sent are the same, the card still changes.
    await post({ ...first, truncatedAlerts: 14 });
    await until("the new count", () =>
      textOf(latest(card)).includes("+ 14 more not sent by Alertmanager") ? true : undefined,
    );
    // One of the alerts sent resolves; the count comes with it and stays.
    const stillFiring = alert("t2", { ...common, pod: "p2" });
    const oneResolved = [alert("t1", { ...common, pod: "p1" }, "resolved"), stillFiring];
    await post({ ...payload(key, common, oneResolved), truncatedAlerts: 14 });
    await until("one resolved", () => (textOf(latest(card)).includes("1 resolved") ? true : undefined));
    expect(textOf(latest(card))).toContain("+ 14 more not sent by Alertmanager");
    // Everything fits again.
    await post({ ...payload(key, common, oneResolved), truncatedAlerts: 0 });
    await until("no cut", () =>
      textOf(latest(card)).includes("not sent by Alertmanager") ? undefined : true,
    );
  });

  it("routes by labels (exact and regex), to every matching route, else to the default channels", async () => {
    const both = newGroupKey("Latency");
    await post(
      payload(both, { alertname: "Latency", team: "payments", service: "web" }, [
        alert("r1", { alertname: "Latency" }),
      ]),
    );
    const other = newGroupKey("Other");
    await post(
      payload(other, { alertname: "Other", service: "batch" }, [alert("r2", { alertname: "Other" })]),
    );
    await until("payments card", () => cardOf(both, "payments"));
    await until("ops card", () => cardOf(both, "ops"));
    await until("default card", () => cardOf(other, "alerts"));
    await inboxIdle();
    expect(cardOf(both, "alerts")).toBeUndefined();
    expect(cardOf(other, "ops")).toBeUndefined();
  });
});

describe("correlation, incident mode and buttons", () => {
  const common = { alertname: "HighErrorRate", severity: "critical", service: "api", env: "production" };

  it("names recent deploys, puts the target in incident mode, and clears it when resolved", async () => {
    const now = Date.now();
    const historyKey = runtime.keys.history("api", "production");
    const entry = (jobId: string, image: string, by: string, at: number) =>
      JSON.stringify({ jobId, kind: "deploy", phase: "succeeded", image, by, at });
    await redis.lpush(
      historyKey,
      entry("jold", "ghcr.io/acme/api:v1.41.3", "dev-2", now - 3 * 3600_000),
      entry("jnew", "ghcr.io/acme/api:v1.42.0", "dev-1", now - 12 * 60_000),
    );
    const key = newGroupKey("HighErrorRate");
    const startsAt = new Date(now - 60_000).toISOString();
    const firing = payload(key, common, [alert("h1", common, "firing", startsAt)]);
    await post(firing);
    const card = await until("incident card", () => cardOf(key, "ops"));
    await inboxIdle();
    const shown = latest(card);
    expect(shown.tone).toBe("failure");
    expect(textOf(shown)).toContain("Last deploy 12 min ago by dev-1: v1.42.0");
    expect(textOf(shown)).toContain("api/production is now rollback-only until this resolves");
    expect(shown.actions.map((a) => a.label)).toEqual(["Roll back to v1.41.3", "Acknowledge", "Silence 1h"]);

    const incidents = createAlertKeys(runtime.keys).incidents;
    const incident = JSON.parse((await redis.hget(incidents, "api:production")) ?? "{}") as Record<
      string,
      unknown
    >;
    expect(incident).toMatchObject({
      alert: "HighErrorRate",
      severity: "critical",
      since: Date.parse(startsAt),
    });
    expect(incident.sinceText).toMatch(/^\d\d:\d\d$/);

    // Acknowledge: allowed for a reader, recorded on the card.
    expect((await handleAlertAction(click("alert-ack", key, "ops", nobody))).ok).toBe(false);
    const ack = await handleAlertAction(click("alert-ack", key, "ops"));
    expect(ack.ok).toBe(true);
    await until("ack shown", () =>
      textOf(latest(card)).includes("Acknowledged by sre-1") ? true : undefined,
    );
    expect(latest(card).actions.map((a) => a.id)).toEqual(["alert-rollback", "alert-silence"]);

    // Silence: one Alertmanager silence for the group's common labels.
    const denied = await handleAlertAction(click("alert-silence", key, "ops", nobody));
    expect(denied.error?.code).toBe("forbidden");
    const silenced = await handleAlertAction(click("alert-silence", key, "ops"));
    expect(silenced.ok).toBe(true);
    expect(silences).toHaveLength(1);
    const body = (
      silences[0] as { url: string; body: { matchers: unknown[]; startsAt: string; endsAt: string } }
    ).body;
    expect((silences[0] as { url: string }).url).toBe("/api/v2/silences");
    expect(body.matchers).toContainEqual({ name: "service", value: "api", isRegex: false, isEqual: true });
    expect(Date.parse(body.endsAt) - Date.parse(body.startsAt)).toBe(3600_000);
    await until("silence shown", () =>
      textOf(latest(card)).includes("Silenced by sre-1") ? true : undefined,
    );

    // Roll back: the command path, as the clicker.
    const rolled = await handleAlertAction(click("alert-rollback", key, "ops"));
    expect(handled.at(-1)?.text).toBe("rollback api production");
    expect(handled.at(-1)?.user.id).toBe(sre.id);
    expect(rolled.ok).toBe(true);
    expect(rolled.jobIds).toHaveLength(1);
    const job = await runtime.ops.find(rolled.jobIds[0] as string);
    expect(job).toMatchObject({ kind: "rollback", service: "api", env: "production" });
    // The same button again is the same operation.
    const again = await handleAlertAction(click("alert-rollback", key, "ops"));
    expect(again.jobIds).toEqual(rolled.jobIds);
    // Someone without the permission is refused by the command path itself.
    const refused = await handleAlertAction(click("alert-rollback", key, "ops", nobody));
    expect(refused.ok).toBe(false);

    await post(payload(key, common, [{ ...alert("h1", common, "resolved", startsAt) }]));
    await until("incident cleared", async () =>
      (await redis.hexists(incidents, "api:production")) ? undefined : true,
    );
    await until("resolved card", () => (latest(card).tone === "success" ? true : undefined));
    expect(latest(card).actions).toEqual([]);
  });

  it("says rollback-only only while a firing alert keeps the target in incident mode", async () => {
    const c = { alertname: "MixedSeverity", service: "api", env: "staging" };
    const key = newGroupKey("MixedSeverity");
    const incidents = createAlertKeys(runtime.keys).incidents;
    const severe = (status: "firing" | "resolved") =>
      alert("m1", { ...c, severity: "critical", instance: "n1" }, status);
    const mild = alert("m2", { ...c, severity: "warning", instance: "n2" });
    await post(payload(key, c, [severe("firing"), mild]));
    const card = await until("the mixed group's card", () => cardOf(key, "ops"));
    await inboxIdle();
    expect(await redis.hexists(incidents, "api:staging")).toBe(1);
    expect(textOf(latest(card))).toContain("api/staging is now rollback-only until this resolves");

    // The critical alert resolves; a warning still fires, which never puts a target in incident mode.
    await post(payload(key, c, [severe("resolved"), mild]));
    await until("one resolved", () => (textOf(latest(card)).includes("1 resolved") ? true : undefined));
    expect(await redis.hexists(incidents, "api:staging")).toBe(0);
    expect(textOf(latest(card))).toContain("1 firing");
    expect(textOf(latest(card))).not.toContain("rollback-only");
  });

  it("titles and colours the card by its firing alerts: a resolved critical leaves a warning card", async () => {
    const c = { alertname: "TitleSeverity", service: "web", env: "qa" };
    const key = newGroupKey("TitleSeverity");
    const severe = (status: "firing" | "resolved") =>
      alert("t1", { ...c, severity: "critical", instance: "n1" }, status);
    const mild = (status: "firing" | "resolved") =>
      alert("t2", { ...c, severity: "warning", instance: "n2" }, status);
    await post(payload(key, c, [severe("firing"), mild("firing")]));
    const card = await until("the group's card", () => cardOf(key, "ops"));
    await inboxIdle();
    expect(latest(card).title).toMatch(/^🔥 \[critical\] TitleSeverity web\/qa · firing since 14:02/);
    expect(latest(card).tone).toBe("failure");

    // Only the warning fires now: the card must not still say critical, nor be drawn as one.
    await post(payload(key, c, [severe("resolved"), mild("firing")]));
    await until("one resolved", () => (textOf(latest(card)).includes("1 resolved") ? true : undefined));
    expect(latest(card).title).toMatch(/^🔥 \[warning\] TitleSeverity web\/qa · firing since 14:02/);
    expect(latest(card).tone).toBe("warning");

    // All resolved: green, as before.
    await post(payload(key, c, [severe("resolved"), mild("resolved")]));
    await until("resolved card", () => (latest(card).tone === "success" ? true : undefined));
    expect(latest(card).title).toMatch(/^✅ .*TitleSeverity web\/qa · resolved at 14:30/);
  });

  it("draws alerts stored without their severity by the group's severity, as before", async () => {
    const c = { alertname: "OldSeverity", service: "web", env: "qa" };
    const key = newGroupKey("OldSeverity");
    await processor.process(
      payload(key, c, [
        alert("o1", { ...c, severity: "critical", instance: "n1" }, "resolved"),
        alert("o2", { ...c, severity: "warning", instance: "n2" }),
      ]),
    );
    // Rewrite the stored alerts as a version that kept neither severity nor incident flag did.
    const cardId = toAlertCardId(key, "shell", "ops");
    const groupKey = createAlertKeys(runtime.keys).group(cardId);
    for (const [field, value] of Object.entries(await redis.hgetall(groupKey))) {
      if (!field.startsWith("f:")) continue;
      const {
        severity: _severity,
        incident: _incident,
        ...old
      } = JSON.parse(value) as Record<string, unknown>;
      await redis.hset(groupKey, field, JSON.stringify(old));
    }
    const history = (service: string, env: string, n: number) => runtime.status.history(service, env, n);
    const source = createAlertCardSource({ redis, keys: runtime.keys, config: alerts, history });
    const loaded = await source.load(cardId);
    if (!loaded || !("card" in loaded)) throw new Error("no card for the old group");
    expect(loaded.card.title).toMatch(/^🔥 \[critical\] OldSeverity web\/qa/);
    expect(loaded.card.tone).toBe("failure");
    await inboxIdle();
  });

  it("posts a new group at once only when a severe alert of it fires", async () => {
    // A processor of its own, on keys no notifier reads, so the marks stay in the cards set to be read.
    const keys = createKeys(`${config.redisPrefix}-pace`);
    const slow = alertsConfigSchema.parse({ ...alerts, updateDelayMs: 60_000 });
    const own = startAlertProcessor({ redis, keys, config: slow, log: quietLog });
    try {
      const c = { alertname: "Pace", service: "web", env: "qa" };
      const markOf = async (key: string) =>
        Number(await redis.zscore(keys.cards, toAlertCardId(key, "shell", "ops"))) - Date.now();
      // The critical alert fired and resolved within group_wait: the first notification already says so.
      const calm = newGroupKey("Pace");
      await own.process(
        payload(calm, c, [
          alert("p1", { ...c, severity: "critical" }, "resolved"),
          alert("p2", { ...c, severity: "warning" }),
        ]),
      );
      expect(await markOf(calm)).toBeGreaterThan(30_000);
      const urgent = newGroupKey("Pace");
      await own.process(payload(urgent, c, [alert("p3", { ...c, severity: "critical" })]));
      expect(await markOf(urgent)).toBeLessThan(1_000);
    } finally {
      await own.close();
      await cleanupPrefix(redis, keys.prefix);
    }
  });

  it("keeps incident mode while any severe alert of the target still fires", async () => {
    const c = { ...common, service: "web" };
    const key = newGroupKey("Saturation");
    const incidents = createAlertKeys(runtime.keys).incidents;
    await processor.process(payload(key, c, [alert("s1", c), alert("s2", c)]));
    expect(await redis.hexists(incidents, "web:production")).toBe(1);
    await processor.process(payload(key, c, [alert("s1", c, "resolved"), alert("s2", c)]));
    expect(await redis.hexists(incidents, "web:production")).toBe(1);
    await processor.process(payload(key, c, [alert("s1", c, "resolved"), alert("s2", c, "resolved")]));
    expect(await redis.hexists(incidents, "web:production")).toBe(0);
    // A warning never sets it.
    const w = { ...c, severity: "warning" };
    await processor.process(payload(newGroupKey("Warn"), w, [alert("w1", w)]));
    expect(await redis.hexists(incidents, "web:production")).toBe(0);
  });
});
