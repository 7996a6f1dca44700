/**
 * The traffic of bench/http-load.ts: a configuration with an environment that needs approval, signed
 * Slack slash commands and `block_actions` clicks as Slack sends them, Alertmanager webhook groups that
 * fire, repeat and resolve, and the bookkeeping that says what shipbot must have done with all of it
 * (the alerts it must drop as repeats, the ledger entries the alerts must leave).
 */
import type { Redis } from "ioredis";
import type { WebhookPayload } from "../src/alerts/alertmanager-payload.ts";
import { type Config, configSchema } from "../src/core/config.ts";
import { benchConfig } from "./slack-streaming.ts";

export const sreUser = { id: "U0SRE00001", name: "sre-1" };
/** A second SRE: approves and rejects the first one's production requests. */
export const approver = { id: "U0SRE00002", name: "sre-2" };
/** Channel of the approval requests (their cards and the clicks on them). */
export const approvalChannel = "C0APPROVE";
export const alertChannel = "C0ALERTS";

/**
 * `staging` needs nothing; `production` needs one approval from `sre` (never the requester's own).
 * Staging deploys spread over the first `stagingServices` services; every production request gets a
 * service of its own, so none supersedes another.
 */
export function mixConfig(prefix: string, stagingServices: number, services: number): Config {
  const svc: Record<string, unknown> = {};
  for (let i = 0; i < Math.max(stagingServices, services); i++) {
    svc[`svc-${i}`] = {
      image: `registry.local/acme/svc-${i}`,
      replicas: { min: 0, max: 50 },
      environments: { staging: { namespace: "staging" }, production: { namespace: "production" } },
    };
  }
  // The queue settings and the `sre` role of the slack-streaming benchmark, with a second SRE.
  const base = benchConfig(prefix, 0);
  return configSchema.parse({
    redisPrefix: prefix,
    queue: base.queue,
    environments: {
      staging: { freezes: [] },
      production: { approval: { required: 1, from: ["sre"], expiresAfterMinutes: 60 } },
    },
    services: svc,
    roles: { sre: { ...base.roles.sre, users: [`slack:${sreUser.id}`, `slack:${approver.id}`] } },
    alerts: {
      default: [{ platform: "slack", channel: alertChannel }],
      updateDelayMs: 500,
    },
  });
}

/** A button click on one of shipbot's cards (`block_actions`, form field `payload`), as Slack sends it. */
export function clickBody(input: {
  user: { id: string; name: string };
  channel: string;
  /** The card's message ts. */
  messageTs: string;
  action: "approve" | "reject" | "cancel" | "rollback";
  value: string;
  trigger: string;
}): string {
  const actionTs = (Date.now() / 1000).toFixed(6);
  const payload = {
    type: "block_actions",
    user: { id: input.user.id, username: input.user.name, name: input.user.name, team_id: "T0EMULATED" },
    api_app_id: "A0SHIPBOT",
    token: "legacy-verification-token",
    container: {
      type: "message",
      message_ts: input.messageTs,
      channel_id: input.channel,
      is_ephemeral: false,
    },
    trigger_id: input.trigger,
    team: { id: "T0EMULATED", domain: "emulated" },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: input.channel, name: input.channel.toLowerCase() },
    message: { type: "message", ts: input.messageTs, text: "card", user: "U0BOT" },
    state: { values: {} },
    response_url: `http://127.0.0.1:9/actions/T0EMULATED/${input.trigger}`,
    actions: [
      {
        action_id: `shipbot:${input.action}`,
        block_id: "b1",
        text: { type: "plain_text", text: input.action, emoji: true },
        value: input.value,
        type: "button",
        action_ts: actionTs,
      },
    ],
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

export interface AlertPost {
  /** ms after the load starts. */
  at: number;
  payload: WebhookPayload;
}

export interface AlertPlan {
  posts: AlertPost[];
  /** Alerts carried by all posts together (each counted once per post it is in). */
  alerts: number;
  /** Alerts a correct processor drops as repeats (nothing about them changed since the last post). */
  repeats: number;
  /** Firing and resolution entries the audit ledger must get: one per alert and status. */
  ledgerEntries: number;
  groups: number;
}

type Status = "firing" | "resolved";
/**
 * Each group's life, one post per step, as Alertmanager sends it: the group's alerts with their status
 * at that step. Alertmanager resends the whole group on every group_interval and repeat_interval, so
 * most alerts in most posts are repeats.
 */
const lifecycle: Status[][] = [
  ["firing"],
  ["firing"],
  ["firing", "firing"],
  ["firing", "firing"],
  ["firing", "firing", "firing"],
  ["firing", "firing", "firing"],
  ["resolved", "firing", "firing"],
  ["resolved", "firing", "firing"],
  ["resolved", "resolved", "resolved"],
  ["resolved", "resolved", "resolved"],
];

/**
 * `rate` webhook posts a second for `seconds`, over groups of up to three alerts that each go through
 * `lifecycle` (one post per group every `lifecycle.length / …` seconds); groups start staggered and a
 * group that has lived through its cycle starts again under a new key. Severity "warning": no group
 * puts a target into incident mode.
 */
export function planAlerts(runId: string, rate: number, seconds: number, stepSeconds: number): AlertPlan {
  const total = Math.floor(rate * seconds);
  const concurrent = Math.max(1, Math.round(rate * stepSeconds));
  const posts: AlertPost[] = [];
  const last = new Map<string, string>();
  let alerts = 0;
  let repeats = 0;
  let ledgerEntries = 0;
  const seenGroups = new Set<string>();
  for (let n = 0; n < total; n++) {
    const slot = n % concurrent;
    const round = Math.floor(n / concurrent);
    const generation = Math.floor(round / lifecycle.length);
    const step = lifecycle[round % lifecycle.length] ?? [];
    const name = `LoadAlert${slot}`;
    const groupKey = `{}:{alertname="${name}",run="${runId}",gen="${generation}"}`;
    seenGroups.add(groupKey);
    const common = { alertname: name, service: `svc-${slot % 50}`, env: "staging", severity: "warning" };
    const list: WebhookPayload["alerts"] = step.map((status, i) => {
      const fingerprint = `${runId}${slot.toString(16)}g${generation}i${i}`;
      const startsAt = new Date(Date.UTC(2026, 0, 1, 0, generation, i)).toISOString();
      const endsAt =
        status === "resolved" ? new Date(Date.UTC(2026, 0, 1, 1, generation, i)).toISOString() : "";
      const signature = `${status}|${startsAt}|${endsAt}`;
      alerts++;
      const before = last.get(fingerprint);
      if (before === signature) repeats++;
      else if (before === undefined || before.split("|")[0] !== status) ledgerEntries++;
      last.set(fingerprint, signature);
      return {
        status,
        labels: { ...common, instance: `node-${i}` },
        annotations: { summary: `${name} on node-${i}` },
        startsAt,
        endsAt: status === "resolved" ? endsAt : "0001-01-01T00:00:00Z",
        generatorURL: "http://prometheus.local/graph",
        fingerprint,
      };
    });
    posts.push({
      at: (n / rate) * 1000,
      payload: {
        version: "4",
        groupKey,
        truncatedAlerts: 0,
        status: list.some((a) => a.status === "firing") ? "firing" : "resolved",
        receiver: "shipbot",
        groupLabels: { alertname: name },
        commonLabels: common,
        commonAnnotations: {},
        externalURL: "http://alertmanager.local",
        alerts: list,
      },
    });
  }
  return { posts, alerts, repeats, ledgerEntries, groups: seenGroups.size };
}

export interface LedgerIndex {
  entries: number;
  /** job id → the types of its entries (job.queued, job.pending-approval, job.approved, …). */
  jobs: Map<string, string[]>;
  /** command id → the types of its entries (command.answered, command.refused, …). */
  commands: Map<string, string[]>;
  /** Entries per type. */
  types: Map<string, number>;
  /** approval.denied entries per job. */
  denied: Map<string, number>;
}

/** Reads the whole audit stream in pages and indexes it by job, command and type. */
export async function readLedger(redis: Redis, key: string): Promise<LedgerIndex> {
  const index: LedgerIndex = {
    entries: 0,
    jobs: new Map(),
    commands: new Map(),
    types: new Map(),
    denied: new Map(),
  };
  const add = (map: Map<string, string[]>, id: string, type: string): void => {
    const list = map.get(id);
    if (list) list.push(type);
    else map.set(id, [type]);
  };
  let start = "-";
  for (;;) {
    const rows = (await redis.xrange(key, start, "+", "COUNT", 2000)) as Array<[string, string[]]>;
    if (rows.length === 0) break;
    for (const [, flat] of rows) {
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
      const type = fields.type ?? "";
      index.entries++;
      index.types.set(type, (index.types.get(type) ?? 0) + 1);
      if (fields.job !== undefined && type.startsWith("job.")) add(index.jobs, fields.job, type);
      if (fields.command !== undefined) add(index.commands, fields.command, type);
      if (type === "approval.denied" && fields.job !== undefined)
        index.denied.set(fields.job, (index.denied.get(fields.job) ?? 0) + 1);
    }
    start = `(${rows[rows.length - 1]?.[0]}`;
  }
  return index;
}

/** The sum of a metric's samples (all label sets) in a Prometheus text exposition. */
export async function scrapeMetric(url: string, name: string): Promise<number | undefined> {
  const text = await fetch(url).then(
    (r) => (r.ok ? r.text() : ""),
    () => "",
  );
  let sum: number | undefined;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest !== "" && !rest.startsWith(" ") && !rest.startsWith("{")) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) sum = (sum ?? 0) + value;
  }
  return sum;
}
