import { createHash } from "node:crypto";
import type { Keys } from "../queue/keys.ts";

/**
 * Keys of the alerts feature. They carry the `{ops}` hash tag so a group's script can mark its card in
 * the notifier's cards set in the same round trip, on one shard of a Redis Cluster.
 */
export interface AlertKeys {
  /** Stream: validated webhook payloads waiting to be processed. */
  inbox: string;
  /** Hash: one alert group as shown in one channel (meta, seq, per-fingerprint state, ack, silence). */
  group(cardId: string): string;
  /** Hash: "<service>:<env>" → incident JSON ({ alert, since, sinceText, severity }). */
  incidents: string;
  /** Hash: fingerprint → "firing|<startsAt>" or "resolved|<startsAt>" of the alerts behind one incident. */
  incidentAlerts(service: string, env: string): string;
  /** Hash: fingerprint → "firing|<startsAt>" or "resolved|<startsAt>" last written to the audit ledger. */
  ledger: string;
}

/** The incidents hash the acquire script reads; a field is present while a target is in incident mode. */
export function incidentsKey(prefix: string): string {
  return `${prefix}:{ops}:incidents`;
}

export function createAlertKeys(keys: Pick<Keys, "prefix">): AlertKeys {
  const base = `${keys.prefix}:{ops}:alerts`;
  return {
    inbox: `${base}:inbox`,
    group: (cardId) => `${base}:group:${cardId}`,
    incidents: incidentsKey(keys.prefix),
    incidentAlerts: (service, env) => `${base}:incident:${service}:${env}`,
    ledger: `${base}:ledger`,
  };
}

/** Prefix of alert card ids; the notifier picks the alert card source by it. */
export const alertCardPrefix = "a";

/** One card per alert group per channel: the id is stable across deliveries, so the card is edited in place. */
export function toAlertCardId(groupKey: string, platform: string, channel: string): string {
  const digest = createHash("sha256").update(`${groupKey}\n${platform}\n${channel}`).digest("hex");
  return `${alertCardPrefix}${digest.slice(0, 24)}`;
}

export const alertCardIdPattern = /^a[0-9a-f]{24}$/;
