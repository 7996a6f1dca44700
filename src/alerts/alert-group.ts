import type { Conversation } from "../core/model.ts";

/** What a group's card needs about the group, refreshed with every change. */
export interface AlertGroupMeta {
  groupKey: string;
  conversation: Conversation;
  receiver: string;
  externalURL: string;
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  alertname?: string;
  service?: string;
  env?: string;
  /** The highest severity of the latest notification, resolved alerts included. */
  severity?: string;
  /**
   * `severity` is at or above the incident severity. Only alerts stored before they kept their own
   * severity and incident flag are drawn by these two; the card otherwise follows its firing alerts.
   */
  critical: boolean;
}

/** One alert of a group, trimmed to what a card shows. */
export interface StoredAlert {
  status: "firing" | "resolved";
  labels: Record<string, string>;
  summary?: string;
  startsAt: number;
  endsAt: number;
  /**
   * Severe enough, with a service and environment, to put its target in incident mode while it fires.
   * Absent on alerts stored by versions before it was kept.
   */
  incident?: boolean;
  /**
   * Its severity label (the group's common one when the alert has none); null when neither has one, so
   * that it can be told apart from alerts stored by versions before it was kept, where it is absent.
   */
  severity?: string | null;
}

export interface AlertGroupMark {
  by: string;
  byId: string;
  at: number;
}

export interface AlertGroupState {
  cardId: string;
  seq: number;
  meta: AlertGroupMeta;
  alerts: Array<StoredAlert & { fingerprint: string }>;
  /**
   * Alerts of the group Alertmanager left out of its latest notification (`max_alerts`): the card can
   * only count them, not list them.
   */
  truncated: number;
  ack?: AlertGroupMark;
  silence?: AlertGroupMark & { id: string; until: number };
}

/** Reads a group hash (HGETALL) back into its parts; undefined when the group is unknown or expired. */
export function fromGroupHash(cardId: string, hash: Record<string, string>): AlertGroupState | undefined {
  if (!hash.meta) return undefined;
  const alerts: AlertGroupState["alerts"] = [];
  for (const [field, value] of Object.entries(hash)) {
    if (field.startsWith("f:"))
      alerts.push({ fingerprint: field.slice(2), ...(JSON.parse(value) as StoredAlert) });
  }
  const state: AlertGroupState = {
    cardId,
    seq: Number(hash.seq ?? 0),
    meta: JSON.parse(hash.meta) as AlertGroupMeta,
    alerts,
    truncated: Number(hash.truncated ?? 0) || 0,
  };
  if (hash.ack) state.ack = JSON.parse(hash.ack) as AlertGroupMark;
  if (hash.silence) state.silence = JSON.parse(hash.silence) as NonNullable<AlertGroupState["silence"]>;
  return state;
}
