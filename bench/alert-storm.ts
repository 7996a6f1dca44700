/**
 * Alert storm: Alertmanager-style notifications for many alerts, over many channels, through shipbot's
 * webhook route, inbox, processor and notifier to the Slack emulator with Slack's real limits. Prints
 * figures; asserts nothing.
 *
 *   node bench/alert-storm.ts            # 10,000 alerts over 60 s across 20 channels
 *   node bench/alert-storm.ts --quick    # 1,000 alerts over 10 s across 5 channels
 *
 * Each channel holds two alert groups; every second each group with new alerts is re-sent whole (as
 * Alertmanager does at group_interval), and one notification in ten is delivered twice (a retry). The
 * first group of channel 0 is critical and starts a few seconds in, so its first-card delay is measured
 * under load. REDIS_URL selects the Redis (default redis://127.0.0.1:6379).
 */
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { pino } from "pino";
import { createSlackChat, createSlackWebClient } from "../src/adapters/slack/index.ts";
import { createAlertKeys } from "../src/alerts/alert-keys.ts";
import type { WebhookPayload } from "../src/alerts/alertmanager-payload.ts";
import { alertsConfigSchema } from "../src/alerts/alerts-config.ts";
import { createAlertCardSource } from "../src/alerts/create-alert-card-source.ts";
import { createAlertInbox } from "../src/alerts/create-alert-inbox.ts";
import { createAlertsRoute } from "../src/alerts/create-alerts-route.ts";
import { startAlertProcessor } from "../src/alerts/start-alert-processor.ts";
import { cleanupPrefix } from "../src/bin/cleanup-prefix.ts";
import { createHttpServer } from "../src/http/create-http-server.ts";
import { createNotifier } from "../src/notify/create-notifier.ts";
import { createStatusStore } from "../src/notify/status-store.ts";
import { createKeys } from "../src/queue/keys.ts";
import { startSlackEmulator } from "../test/emulators/slack/index.ts";

export interface AlertStormOptions {
  alerts: number;
  durationMs: number;
  channels: number;
  /** Slack emulator time scale (1: Slack's real limits); shipbot's pacing is scaled to match. */
  timeScale: number;
  /** How long to let cards catch up after the last notification. */
  drainMs: number;
  redisUrl: string;
}

export interface AlertStormResult {
  alertsSent: number;
  notificationsSent: number;
  redeliveries: number;
  ingestSeconds: number;
  alertsPerSecond: number;
  cardsCreated: number;
  chatPosts: number;
  chatUpdates: number;
  rateLimited: number;
  firstCriticalCardMs: number | undefined;
  cardsPendingAfterDrain: number;
}

const token = `bench-${randomBytes(12).toString("hex")}`;

export async function runAlertStorm(options: AlertStormOptions): Promise<AlertStormResult> {
  const log = pino({ level: process.env.LOG_LEVEL ?? "silent" });
  const prefix = `bench-alerts-${randomBytes(3).toString("hex")}`;
  const keys = createKeys(prefix);
  const redis = new Redis(options.redisUrl);
  const slack = await startSlackEmulator({ botToken: "xoxb-bench", timeScale: options.timeScale });
  const channels = Array.from({ length: options.channels }, (_, i) => `C0STORM${String(i).padStart(3, "0")}`);
  const config = alertsConfigSchema.parse({
    routes: channels.map((channel, i) => ({
      match: { team: `t${i}` },
      channels: [{ platform: "slack", channel }],
    })),
  });
  const chat = createSlackChat(
    createSlackWebClient({ botToken: "xoxb-bench", apiUrl: `${slack.url}/api/`, log }),
    {
      postIntervalMs: 1100 * options.timeScale,
      updateIntervalMs: 1250 * options.timeScale,
    },
  );
  const status = createStatusStore(redis, keys);
  const notifier = createNotifier({
    redis,
    keys,
    status,
    chats: { slack: chat },
    log,
    sources: [createAlertCardSource({ redis, keys, config, history: (s, e, n) => status.history(s, e, n) })],
  });
  const processor = startAlertProcessor({ redis, keys, config, log });
  const server: Server = createHttpServer({
    log,
    ready: async () => ({ ok: true, reasons: [] }),
    routes: {
      "POST /hooks/alertmanager": createAlertsRoute({
        token,
        ingest: createAlertInbox(redis, keys).push,
        log,
      }),
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/alertmanager`;

  // Two groups per channel; alerts arrive evenly over the run, round-robin over groups.
  const groups = channels.flatMap((_, c) =>
    [0, 1].map((g) => ({
      key: `{}:{alertname="Storm${c}-${g}"}`,
      labels: {
        alertname: `Storm${c}-${g}`,
        team: `t${c}`,
        severity: c === 0 && g === 0 ? "critical" : "warning",
      },
      alerts: [] as WebhookPayload["alerts"],
      dirty: false,
    })),
  );
  const critical = groups[0] as (typeof groups)[number];
  const started = performance.now();
  const startIso = new Date().toISOString();
  let sent = 0;
  let notifications = 0;
  let redeliveries = 0;
  let criticalPostedAt: number | undefined;
  const ticks = Math.max(1, Math.round(options.durationMs / 1000));
  const perTick = Math.ceil(options.alerts / ticks);
  const send = async (body: string) => {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body,
    });
    if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${await res.text()}`);
  };
  for (let tick = 0; tick < ticks && sent < options.alerts; tick++) {
    const tickStart = performance.now();
    for (let i = 0; i < perTick && sent < options.alerts; i++) {
      // The critical group stays empty for the first few seconds, then fires with the storm under way.
      const pool = tick < Math.min(5, ticks / 2) ? groups.slice(1) : groups;
      const group = pool[sent % pool.length] as (typeof groups)[number];
      group.alerts.push({
        status: "firing",
        labels: { ...group.labels, instance: `node-${group.alerts.length}` },
        annotations: { summary: "storm" },
        startsAt: startIso,
        endsAt: "0001-01-01T00:00:00Z",
        generatorURL: "",
        fingerprint: `${group.key}-${group.alerts.length}`,
      });
      group.dirty = true;
      sent++;
    }
    const batch: Array<Promise<void>> = [];
    for (const group of groups.filter((g) => g.dirty)) {
      group.dirty = false;
      const body = JSON.stringify({
        version: "4",
        groupKey: group.key,
        truncatedAlerts: 0,
        status: "firing",
        receiver: "shipbot",
        groupLabels: { alertname: group.labels.alertname },
        commonLabels: group.labels,
        commonAnnotations: {},
        externalURL: "http://alertmanager.bench",
        alerts: group.alerts,
      } satisfies WebhookPayload);
      if (group === critical && criticalPostedAt === undefined) criticalPostedAt = Date.now();
      notifications++;
      batch.push(send(body));
      if (notifications % 10 === 0) {
        redeliveries++;
        batch.push(send(body));
      }
    }
    await Promise.all(batch);
    await sleep(Math.max(0, 1000 - (performance.now() - tickStart)));
  }
  const { inbox } = createAlertKeys(keys);
  while ((await redis.xlen(inbox)) > 0) await sleep(20);
  const ingestSeconds = (performance.now() - started) / 1000;

  const drainUntil = Date.now() + options.drainMs;
  while (
    Date.now() < drainUntil &&
    (await redis.zcard(keys.cards)) + (await redis.zcard(keys.cardsInflight)) > 0
  )
    await sleep(100);
  const criticalMessage = slack.messages(channels[0]).find((m) => m.text.includes(critical.labels.alertname));
  const firstCriticalCardMs =
    criticalMessage && criticalPostedAt !== undefined
      ? (criticalMessage.history[0]?.at ?? 0) - criticalPostedAt
      : undefined;
  const result: AlertStormResult = {
    alertsSent: sent,
    notificationsSent: notifications,
    redeliveries,
    ingestSeconds,
    alertsPerSecond: sent / ingestSeconds,
    cardsCreated: slack.messages().length,
    chatPosts: slack.calls("chat.postMessage").length,
    chatUpdates: slack.calls("chat.update").length,
    rateLimited: slack.rateLimited(),
    firstCriticalCardMs,
    cardsPendingAfterDrain: (await redis.zcard(keys.cards)) + (await redis.zcard(keys.cardsInflight)),
  };

  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await processor.close();
  await notifier.close();
  await slack.close();
  await cleanupPrefix(redis, prefix);
  await redis.quit();
  return result;
}

if (import.meta.main) {
  const quick = process.argv.includes("--quick");
  const options: AlertStormOptions = {
    alerts: quick ? 1_000 : 10_000,
    durationMs: quick ? 10_000 : 60_000,
    channels: quick ? 5 : 20,
    timeScale: 1,
    drainMs: quick ? 15_000 : 60_000,
    redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  };
  const r = await runAlertStorm(options);
  const rows: Array<[string, string]> = [
    [
      "alerts sent",
      `${r.alertsSent} in ${r.notificationsSent} notifications (+${r.redeliveries} redelivered)`,
    ],
    [
      "ingested and processed",
      `${r.alertsPerSecond.toFixed(0)} alerts/s over ${r.ingestSeconds.toFixed(1)} s`,
    ],
    ["cards created", String(r.cardsCreated)],
    ["chat calls", `${r.chatPosts} chat.postMessage + ${r.chatUpdates} chat.update`],
    ["429s", String(r.rateLimited)],
    [
      "first critical card",
      r.firstCriticalCardMs === undefined ? "not posted" : `${r.firstCriticalCardMs} ms`,
    ],
    ["cards still pending after drain", String(r.cardsPendingAfterDrain)],
  ];
  console.log(
    `alert storm: ${options.alerts} alerts over ${options.durationMs / 1000} s, ${options.channels} channels`,
  );
  for (const [name, value] of rows) console.log(`  ${name.padEnd(32)} ${value}`);
}
