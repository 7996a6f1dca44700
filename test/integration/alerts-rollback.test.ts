/**
 * The Roll back button of alert cards against real Redis and the real command path: a rollback is
 * `rollout undo`, so it must only undo the deploy the alert points at, once, however many cards show it.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toAlertCardId } from "../../src/alerts/alert-keys.ts";
import type { WebhookPayload } from "../../src/alerts/alertmanager-payload.ts";
import { type AlertsConfig, alertsConfigSchema } from "../../src/alerts/alerts-config.ts";
import { createAlertCardSource } from "../../src/alerts/create-alert-card-source.ts";
import { type AlertProcessor, startAlertProcessor } from "../../src/alerts/start-alert-processor.ts";
import type { ChatAction } from "../../src/app/handle-action.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Card } from "../../src/core/card.ts";
import type { ChatUser, Conversation, JobData } from "../../src/core/model.ts";
import type { CardSource } from "../../src/notify/create-notifier.ts";
import { sreUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { createRecordingChat, quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";

const alerts: AlertsConfig = alertsConfigSchema.parse({
  default: [{ platform: "shell", channel: "alerts" }],
  routes: [
    { match: { team: "payments" }, channels: [{ platform: "shell", channel: "payments" }] },
    // One group shown on both platforms at once.
    {
      match: { team: "checkout" },
      channels: [
        { platform: "slack", channel: "C0CHECKOUT" },
        { platform: "teams", channel: "19:checkout@thread.tacv2" },
      ],
    },
  ],
});
const config = Object.assign(testConfig(), { alerts });

let redis: Redis;
let runtime: Runtime;
let processor: AlertProcessor;
let cards: CardSource;

beforeAll(async () => {
  redis = new Redis(redisUrl);
  // Nothing works the queue: a rollback stays queued, so the test sees the jobs the clicks made.
  runtime = await createRuntime({
    config,
    redisUrl,
    executor: createGatedExecutor().executor,
    chats: { shell: createRecordingChat() },
    log: quietLog,
    accept: true,
    work: false,
    notify: false,
  });
  processor = startAlertProcessor({ redis, keys: runtime.keys, config: alerts, log: quietLog });
  cards = createAlertCardSource({
    redis,
    keys: runtime.keys,
    config: alerts,
    history: (service, env, count) => runtime.status.history(service, env, count),
  });
});

afterAll(async () => {
  await processor?.close();
  await runtime?.close();
  await cleanupPrefix(redis, config.redisPrefix);
  await redis.quit();
});

/** Writes the target's operation history the way finished jobs leave it, oldest first. */
async function recordHistory(
  service: string,
  env: string,
  entries: Array<{ kind: string; image: string; by: string; minutesAgo: number; phase?: string }>,
): Promise<void> {
  const now = Date.now();
  for (const e of entries)
    await redis.lpush(
      runtime.keys.history(service, env),
      JSON.stringify({
        jobId: `j${randomBytes(5).toString("hex")}`,
        kind: e.kind,
        phase: e.phase ?? "succeeded",
        image: e.image,
        by: e.by,
        at: now - e.minutesAgo * 60_000,
      }),
    );
}

function firing(name: string, labels: Record<string, string>): WebhookPayload {
  const common = { alertname: name, severity: "critical", ...labels };
  return {
    version: "4",
    groupKey: `{}:{alertname="${name}-${randomBytes(3).toString("hex")}"}`,
    truncatedAlerts: 0,
    status: "firing",
    receiver: "shipbot",
    groupLabels: { alertname: name },
    commonLabels: common,
    commonAnnotations: {},
    externalURL: "http://alertmanager.local",
    alerts: [
      {
        status: "firing",
        labels: common,
        annotations: {},
        startsAt: new Date(Date.now() - 60_000).toISOString(),
        endsAt: "0001-01-01T00:00:00Z",
        generatorURL: "",
        fingerprint: randomBytes(8).toString("hex"),
      },
    ],
  };
}

function click(
  groupKey: string,
  channel: string,
  user: ChatUser = sreUser,
  platform: Conversation["platform"] = "shell",
): ChatAction {
  return {
    id: `click-${randomBytes(4).toString("hex")}`,
    user,
    conversation: { platform, channel },
    action: "alert-rollback",
    value: toAlertCardId(groupKey, platform, channel),
    receivedAt: Date.now(),
  };
}

async function cardOf(
  groupKey: string,
  channel: string,
  platform: Conversation["platform"] = "shell",
): Promise<Card> {
  const loaded = await cards.load(toAlertCardId(groupKey, platform, channel));
  if (!loaded || !("card" in loaded)) throw new Error(`no card for ${groupKey} in ${channel}`);
  return loaded.card;
}

describe("the Roll back button of alert cards", () => {
  it("makes one rollback for every card the same bad deploy caused, across alert groups and channels", async () => {
    await recordHistory("api", "production", [
      { kind: "deploy", image: "ghcr.io/acme/api:v1.41.3", by: "dev-2", minutesAgo: 180 },
      { kind: "deploy", image: "ghcr.io/acme/api:v1.42.0", by: "dev-1", minutesAgo: 12 },
    ]);
    // One bad deploy, two alert groups; the first is shown in two channels.
    const errors = firing("HighErrorRate", { service: "api", env: "production", team: "payments" });
    const latency = firing("HighLatency", { service: "api", env: "production" });
    await processor.process(errors);
    await processor.process(latency);
    for (const [key, channel] of [
      [errors.groupKey, "payments"],
      [latency.groupKey, "alerts"],
    ] as const)
      expect((await cardOf(key, channel)).actions[0]?.label).toBe("Roll back to v1.41.3");

    const first = await runtime.handleAction(click(errors.groupKey, "payments"));
    expect(first.ok).toBe(true);
    expect(first.jobIds).toHaveLength(1);
    // Two on-call engineers each click the card in front of them: a second rollback would undo the
    // first and bring v1.42.0 back, so both clicks are the one rollback.
    const second = await runtime.handleAction(click(latency.groupKey, "alerts"));
    expect(second.jobIds).toEqual(first.jobIds);
    const third = await runtime.handleAction(click(latency.groupKey, "alerts"));
    expect(third.jobIds).toEqual(first.jobIds);
  });

  it("makes one rollback when the same card is clicked in Slack and in Teams, and tells the second clicker", async () => {
    await recordHistory("web", "staging", [
      { kind: "deploy", image: "ghcr.io/acme/web:v4", by: "dev-2", minutesAgo: 180 },
      { kind: "deploy", image: "ghcr.io/acme/web:v5", by: "dev-1", minutesAgo: 12 },
    ]);
    const alert = firing("HighErrorRate", { service: "web", env: "staging", team: "checkout" });
    await processor.process(alert);
    const slack = "C0CHECKOUT";
    const teams = "19:checkout@thread.tacv2";
    expect((await cardOf(alert.groupKey, slack, "slack")).actions[0]?.label).toBe("Roll back to v4");
    expect((await cardOf(alert.groupKey, teams, "teams")).actions[0]?.label).toBe("Roll back to v4");

    const teamsSre: ChatUser = {
      id: "teams:00000000-0000-0000-0000-0000000000a1",
      name: "sre-teams",
      groups: [],
    };
    const teamsStranger: ChatUser = {
      id: "teams:00000000-0000-0000-0000-0000000000ff",
      name: "nobody",
      groups: [],
    };
    const first = await runtime.handleAction(click(alert.groupKey, slack, sreUser, "slack"));
    expect(first.ok).toBe(true);
    expect(first.jobIds).toHaveLength(1);
    // The on-call engineer in Teams clicks the same alert a moment later: a second rollback would undo
    // the first and bring v5 back.
    const second = await runtime.handleAction(click(alert.groupKey, teams, teamsSre, "teams"));
    expect(second.ok).toBe(true);
    expect(second.jobIds).toEqual(first.jobIds);
    expect(second.card?.title).toContain(
      `web/staging is already being rolled back (${first.jobIds[0]}) by sre-1 from Slack`,
    );
    // Whoever may not roll back is still told so, not that a rollback is on its way.
    const denied = await runtime.handleAction(click(alert.groupKey, teams, teamsStranger, "teams"));
    expect(denied.error?.code).toBe("forbidden");
    expect(denied.jobIds).toEqual([]);

    const queued = (await runtime.ops.queue.getJobs(["waiting", "prioritized", "delayed", "active"])).filter(
      (job) => job?.data.service === "web" && job.data.env === "staging",
    );
    expect(queued.map((job) => job.id)).toEqual(first.jobIds);
    // The first click's job: its clicker's name, and its card in the Slack thread it came from.
    const data = queued[0]?.data as JobData;
    expect(data.requestedBy.name).toBe("sre-1");
    expect(data.conversation).toEqual({ platform: "slack", channel: slack });
  });

  it("after a rollback by hand, offers no rollback that would bring the bad deploy back, and refuses a stale click", async () => {
    await recordHistory("web", "production", [
      { kind: "deploy", image: "ghcr.io/acme/web:v3.0.0", by: "dev-2", minutesAgo: 180 },
      { kind: "deploy", image: "ghcr.io/acme/web:v3.1.0", by: "dev-1", minutesAgo: 12 },
    ]);
    const alert = firing("HighErrorRate", { service: "web", env: "production" });
    await processor.process(alert);
    expect((await cardOf(alert.groupKey, "alerts")).actions[0]?.label).toBe("Roll back to v3.0.0");

    // Someone types `/rollback web production` before anyone clicks; it has finished.
    await recordHistory("web", "production", [
      { kind: "rollback", image: "ghcr.io/acme/web:v3.0.0", by: "sre-2", minutesAgo: 1 },
    ]);
    const card = await cardOf(alert.groupKey, "alerts");
    const text = [card.title, ...card.lines].join("\n");
    expect(text).toContain("Last deploy 12 min ago by dev-1: v3.1.0");
    expect(text).toContain("Since then: rolled back to v3.0.0 by sre-2, 1 min ago");
    expect(card.actions.map((a) => a.id)).not.toContain("alert-rollback");

    // The button of the card as it was shown before: undoing the rollback would restore v3.1.0.
    const stale = await runtime.handleAction(click(alert.groupKey, "alerts"));
    expect(stale.ok).toBe(false);
    expect(stale.error?.code).toBe("conflict");
    expect(stale.card?.title).toContain("already rolled back to v3.0.0 by sre-2");
    expect(stale.jobIds).toEqual([]);
    expect((await runtime.ops.list()).filter((job) => job.data.service === "web")).toEqual([]);
  });

  it("lets a rollback that failed be tried again from the button, once per attempt", async () => {
    await recordHistory("api", "staging", [
      { kind: "deploy", image: "ghcr.io/acme/api:v7", by: "dev-2", minutesAgo: 180 },
      { kind: "deploy", image: "ghcr.io/acme/api:v8", by: "dev-1", minutesAgo: 12 },
    ]);
    const alert = firing("HighErrorRate", { service: "api", env: "staging" });
    await processor.process(alert);
    const first = await runtime.handleAction(click(alert.groupKey, "alerts"));
    expect(first.jobIds).toHaveLength(1);

    // That rollback failed (the cluster refused it): v8 is still the newest change.
    await recordHistory("api", "staging", [
      { kind: "rollback", image: "ghcr.io/acme/api:v7", by: "sre-1", minutesAgo: 1, phase: "failed" },
    ]);
    expect((await cardOf(alert.groupKey, "alerts")).actions[0]?.label).toBe("Roll back to v7");
    const retry = await runtime.handleAction(click(alert.groupKey, "alerts"));
    expect(retry.ok).toBe(true);
    expect(retry.jobIds).toHaveLength(1);
    expect(retry.jobIds).not.toEqual(first.jobIds);
    const again = await runtime.handleAction(click(alert.groupKey, "alerts"));
    expect(again.jobIds).toEqual(retry.jobIds);
  });
});
