import { z } from "zod";

/**
 * Alertmanager's webhook body, version 4. Parsed leniently (unknown fields pass) because newer
 * Alertmanager releases add fields; the version itself is checked strictly.
 *
 * A rejection is final (Alertmanager retries only 5xx), and every repeat of the group is rejected the same
 * way, so the group would never be shown. Free text shipbot only clips for display (annotations, the
 * generator URL, which carries the rule's whole expression URL-encoded) is therefore bounded by the body
 * limit alone; labels, which name Redis keys and silences, keep their bounds.
 */
const labels = z.record(z.string().max(256), z.string().max(4096));
const annotations = z.record(z.string(), z.string());

export const webhookAlertSchema = z.object({
  status: z.enum(["firing", "resolved"]),
  labels,
  annotations: annotations.default({}),
  startsAt: z.string().min(1).max(64),
  endsAt: z.string().max(64).default(""),
  generatorURL: z.string().default(""),
  fingerprint: z.string().min(1).max(128),
});

export const webhookPayloadSchema = z.object({
  version: z.literal("4"),
  groupKey: z.string().min(1).max(4096),
  truncatedAlerts: z.int().min(0).default(0),
  status: z.enum(["firing", "resolved"]),
  receiver: z.string().max(256),
  groupLabels: labels,
  commonLabels: labels,
  commonAnnotations: annotations,
  externalURL: z.string().max(4096),
  alerts: z.array(webhookAlertSchema).max(10_000),
});

export type WebhookAlert = z.infer<typeof webhookAlertSchema>;
export type WebhookPayload = z.infer<typeof webhookPayloadSchema>;

/** Alertmanager's "not set" time (Go's zero time) and anything unparsable become 0. Nanoseconds are cut to ms. */
export function toEpochMs(time: string): number {
  if (time === "" || time.startsWith("0001-01-01")) return 0;
  const ms = Date.parse(time.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isFinite(ms) ? ms : 0;
}
