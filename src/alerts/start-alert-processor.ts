import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { auditMaxLength } from "../audit/audit-log.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Keys } from "../queue/keys.ts";
import type { AlertGroupMeta, StoredAlert } from "./alert-group.ts";
import { createAlertKeys, toAlertCardId } from "./alert-keys.ts";
import { groupScript, incidentScript, ledgerScript } from "./alert-scripts.ts";
import { toEpochMs, type WebhookPayload, webhookPayloadSchema } from "./alertmanager-payload.ts";
import { type AlertsConfig, isIncidentSeverity, routeAlert, severityRank } from "./alerts-config.ts";

export interface AlertProcessorOptions {
  /** A connection the processor may block on (it duplicates it for its blocking reads). */
  redis: Redis;
  keys: Pick<Keys, "prefix" | "cards" | "audit">;
  config: AlertsConfig;
  log: Logger;
  /** Name of this reader in the inbox's consumer group (unique per process). */
  consumer?: string;
  /** Entries another reader held longer than this are taken over (its process died). Default 60 s. */
  claimIdleMs?: number;
  /** Counts alerts dropped as repeats (`shipbot_alerts_deduplicated_total`). */
  metrics?: Pick<Metrics, "alertsDeduplicated">;
}

export interface ProcessOutcome {
  /** Alert×channel states that changed (0 for a redelivery). */
  changed: number;
  /** Cards created by this notification. */
  created: number;
}

export interface AlertProcessor {
  /** Applies one notification at once (the loop calls it for each inbox entry; tests may too). */
  process(payload: WebhookPayload): Promise<ProcessOutcome>;
  close(): Promise<void>;
}

type ScriptRedis = Redis & {
  shipbotAlertGroup(...args: Array<string | number>): Promise<[number, number, number]>;
  shipbotAlertIncident(...args: Array<string | number>): Promise<number>;
  shipbotAlertLedger(...args: Array<string | number>): Promise<number>;
};

const groupName = "alerts";
/** Groups and incident records outlive any alert shown on a card by far. */
const ttlSeconds = 7 * 24 * 3600;
const maxLabelsKept = 16;

function clip(text: string, max: number): string {
  // Control characters would break a card's layout; the adapters escape markup themselves.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, " ");
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/** An alert's severity label, the group's common one when the alert has none. */
function severityOf(
  config: AlertsConfig,
  payload: WebhookPayload,
  alert: WebhookPayload["alerts"][number],
): string | undefined {
  return alert.labels[config.labels.severity] ?? payload.commonLabels[config.labels.severity];
}

/**
 * The service×environment an alert puts in incident mode while it fires, if any. The incident script and
 * the card's "rollback-only" line both follow this, so the card says what the acquire script enforces.
 */
function toIncidentTarget(
  config: AlertsConfig,
  payload: WebhookPayload,
  alert: WebhookPayload["alerts"][number],
): { service: string; env: string; labels: Record<string, string> } | undefined {
  const labels = { ...payload.commonLabels, ...alert.labels };
  const service = labels[config.labels.service];
  const env = labels[config.labels.env];
  if (!service || !env || !isIncidentSeverity(config, labels[config.labels.severity])) return undefined;
  return { service, env, labels };
}

function toStoredAlert(
  alert: WebhookPayload["alerts"][number],
  severity: string | undefined,
  incident: boolean,
): StoredAlert {
  const labels: Record<string, string> = {};
  for (const [name, value] of Object.entries(alert.labels).slice(0, maxLabelsKept))
    labels[clip(name, 64)] = clip(value, 120);
  const stored: StoredAlert = {
    status: alert.status,
    labels,
    startsAt: toEpochMs(alert.startsAt),
    endsAt: alert.status === "resolved" ? toEpochMs(alert.endsAt) : 0,
    incident,
    severity: severity === undefined ? null : clip(severity, 64),
  };
  const summary = alert.annotations.summary ?? alert.annotations.description;
  if (summary) stored.summary = clip(summary, 200);
  return stored;
}

/**
 * A firing alert's endsAt moves with every resend from Prometheus; it says nothing new, so only a
 * resolved alert's end is part of its signature.
 */
function signature(alert: WebhookPayload["alerts"][number]): string {
  return `${alert.status}|${alert.startsAt}|${alert.status === "resolved" ? alert.endsAt : ""}`;
}

function highestSeverity(config: AlertsConfig, payload: WebhookPayload): string | undefined {
  const name = config.labels.severity;
  let best = payload.commonLabels[name];
  for (const alert of payload.alerts) {
    const s = alert.labels[name];
    if (s !== undefined && (best === undefined || severityRank(config, s) > severityRank(config, best)))
      best = s;
  }
  return best;
}

/**
 * One inbox entry's payload, validated again: it crossed a process boundary and may have been written by
 * another version of shipbot during a rolling upgrade (another field, another encoding, another shape).
 * Never throws, so one bad entry cannot stop the ones after it.
 */
function parseInboxEntry(fields: string[]): { payload: WebhookPayload } | { problem: string } {
  let raw: string | undefined;
  // Field names and values alternate; a value may itself be "p", so only even positions are names.
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === "p") raw = fields[i + 1];
  if (raw === undefined) return { problem: "no payload field" };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { problem: "payload is not JSON" };
  }
  const parsed = webhookPayloadSchema.safeParse(json);
  if (!parsed.success)
    return { problem: `not a v4 notification at ${parsed.error.issues[0]?.path.join(".") || "(root)"}` };
  return { payload: parsed.data };
}

function formatClock(ms: number, timeZone: string): string {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone,
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
  }).format(ms);
}

/**
 * Reads validated notifications from the inbox stream (a consumer group, so any number of processes
 * share the work and entries a dead reader held are taken over) and applies each: one script per alert
 * group per routed channel, one per severe alert for incident mode. Cards are only marked; the notifier
 * renders them at the platform's pace.
 */
export function startAlertProcessor(options: AlertProcessorOptions): AlertProcessor {
  const { config, log } = options;
  const alertKeys = createAlertKeys(options.keys);
  const redis = options.redis as ScriptRedis;
  if (typeof redis.shipbotAlertGroup !== "function") {
    redis.defineCommand("shipbotAlertGroup", { numberOfKeys: 2, lua: groupScript });
    redis.defineCommand("shipbotAlertIncident", { numberOfKeys: 2, lua: incidentScript });
    redis.defineCommand("shipbotAlertLedger", { numberOfKeys: 2, lua: ledgerScript });
  }
  const consumer = options.consumer ?? `alerts-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const claimIdleMs = options.claimIdleMs ?? 60_000;
  let stopped = false;

  async function apply(payload: WebhookPayload): Promise<ProcessOutcome> {
    const labels = { ...payload.groupLabels, ...payload.commonLabels };
    const severity = highestSeverity(config, payload);
    const critical = isIncidentSeverity(config, severity);
    // Only a severe alert that fires makes a new card urgent: one that fired and resolved within
    // group_wait arrives already resolved in the group's first notification, and its card is not severe.
    const urgent = payload.alerts.some(
      (alert) => alert.status === "firing" && isIncidentSeverity(config, severityOf(config, payload, alert)),
    );
    const triples: string[] = [];
    for (const alert of payload.alerts) {
      const incident = toIncidentTarget(config, payload, alert) !== undefined;
      const stored = toStoredAlert(alert, severityOf(config, payload, alert), incident);
      triples.push(alert.fingerprint, signature(alert), JSON.stringify(stored));
    }
    let changed = 0;
    let created = 0;
    // Every routed channel sees the same alerts: one that changed none of them was a repeat.
    let changedAnywhere = 0;
    const channels = routeAlert(config, labels);
    if (channels.length === 0)
      log.warn(
        { groupKey: payload.groupKey },
        "alert group matches no route and no default channel; not shown",
      );
    for (const channel of channels) {
      const meta: AlertGroupMeta = {
        groupKey: payload.groupKey,
        conversation: { platform: channel.platform, channel: channel.channel },
        receiver: payload.receiver,
        externalURL: payload.externalURL,
        groupLabels: payload.groupLabels,
        commonLabels: payload.commonLabels,
        critical,
      };
      const alertname = labels.alertname;
      const service = labels[config.labels.service];
      const env = labels[config.labels.env];
      if (alertname !== undefined) meta.alertname = alertname;
      if (service !== undefined) meta.service = service;
      if (env !== undefined) meta.env = env;
      if (severity !== undefined) meta.severity = severity;
      const cardId = toAlertCardId(payload.groupKey, channel.platform, channel.channel);
      const [count, , isNew] = await redis.shipbotAlertGroup(
        alertKeys.group(cardId),
        options.keys.cards,
        cardId,
        JSON.stringify(meta),
        // The first card of a group with a critical alert firing goes out at once; everything else coalesces.
        urgent ? 0 : config.updateDelayMs,
        config.updateDelayMs,
        ttlSeconds,
        payload.truncatedAlerts,
        ...triples,
      );
      changed += count;
      created += isNew;
      changedAnywhere = Math.max(changedAnywhere, count);
    }
    const repeats = channels.length > 0 ? payload.alerts.length - changedAnywhere : 0;
    if (repeats > 0) options.metrics?.alertsDeduplicated.inc(repeats);
    await applyIncidents(payload);
    await appendToLedger(payload);
    return { changed, created };
  }

  /** Each alert's firing and resolution, once, into the audit ledger (whatever its route or severity). */
  async function appendToLedger(payload: WebhookPayload): Promise<void> {
    const args: Array<string | number> = [];
    for (const alert of payload.alerts) {
      const all = { ...payload.commonLabels, ...alert.labels };
      const startsAt = toEpochMs(alert.startsAt);
      args.push(
        alert.fingerprint,
        `${alert.status}|${startsAt}`,
        alert.status,
        clip(all.alertname ?? "", 120),
        clip(all[config.labels.service] ?? "", 120),
        clip(all[config.labels.env] ?? "", 120),
        clip(all[config.labels.severity] ?? "", 64),
        startsAt,
        alert.status === "resolved" ? toEpochMs(alert.endsAt) : 0,
      );
    }
    // In slices, so a storm of thousands of alerts never makes one long script.
    const slice = 9 * 500;
    for (let i = 0; i < args.length; i += slice) {
      await redis.shipbotAlertLedger(
        alertKeys.ledger,
        options.keys.audit,
        auditMaxLength,
        ttlSeconds,
        ...args.slice(i, i + slice),
      );
    }
  }

  async function applyIncidents(payload: WebhookPayload): Promise<void> {
    for (const alert of payload.alerts) {
      const target = toIncidentTarget(config, payload, alert);
      if (!target) continue;
      const { service, env, labels: all } = target;
      const since = toEpochMs(alert.startsAt) || Date.now();
      const incident = {
        alert: all.alertname ?? "alert",
        since,
        sinceText: formatClock(since, config.timeZone),
        severity: all[config.labels.severity],
        fingerprint: alert.fingerprint,
      };
      await redis.shipbotAlertIncident(
        alertKeys.incidents,
        alertKeys.incidentAlerts(service, env),
        `${service}:${env}`,
        alert.fingerprint,
        alert.status,
        alert.startsAt,
        JSON.stringify(incident),
        ttlSeconds,
      );
    }
  }

  async function handleEntries(reader: Redis, entries: Array<[string, string[]]>): Promise<void> {
    for (const [id, fields] of entries) {
      if (stopped) return;
      const entry = parseInboxEntry(fields);
      if ("payload" in entry) {
        try {
          await apply(entry.payload);
        } catch (error) {
          // Left pending: another reader (or this one, after claimIdleMs) takes it over.
          log.warn({ err: error, entry: id }, "could not apply an alert notification; will retry");
          continue;
        }
      } else {
        // Retrying cannot make it readable, and left pending it would hold up the entries after it.
        log.error({ entry: id, reason: entry.problem }, "unreadable entry in the alert inbox; dropping it");
      }
      await reader.multi().xack(alertKeys.inbox, groupName, id).xdel(alertKeys.inbox, id).exec();
    }
  }

  const reader = options.redis.duplicate();
  reader.on("error", (error) => log.warn({ err: error }, "redis connection problem (alerts)"));
  const loop = (async () => {
    try {
      await reader.xgroup("CREATE", alertKeys.inbox, groupName, "0", "MKSTREAM");
    } catch (error) {
      if (!String((error as Error).message).includes("BUSYGROUP"))
        log.warn({ err: error }, "alert inbox group");
    }
    let lastClaim = 0;
    while (!stopped) {
      try {
        if (Date.now() - lastClaim > Math.min(claimIdleMs, 30_000)) {
          lastClaim = Date.now();
          const claimed = (await reader.xautoclaim(
            alertKeys.inbox,
            groupName,
            consumer,
            claimIdleMs,
            "0-0",
            "COUNT",
            100,
          )) as [string, Array<[string, string[]]>];
          await handleEntries(reader, claimed[1] ?? []);
        }
        const reply = (await reader.xreadgroup(
          "GROUP",
          groupName,
          consumer,
          "COUNT",
          100,
          "BLOCK",
          500,
          "STREAMS",
          alertKeys.inbox,
          ">",
        )) as Array<[string, Array<[string, string[]]>]> | null;
        for (const [, entries] of reply ?? []) await handleEntries(reader, entries);
      } catch (error) {
        if (stopped) break;
        log.warn({ err: error }, "alert processor could not read its inbox; retrying");
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  })();

  return {
    process: apply,
    async close() {
      stopped = true;
      await loop;
      await reader.quit().catch(() => undefined);
    },
  };
}
