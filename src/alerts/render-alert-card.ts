import { type Card, type CardAction, createCard } from "../core/card.ts";
import { type HistoryEntry, newestChange, succeededNewestFirst } from "../notify/status-store.ts";
import type { AlertGroupMeta, AlertGroupState, StoredAlert } from "./alert-group.ts";
import { type AlertsConfig, isIncidentSeverity, severityRank } from "./alerts-config.ts";

/** `severities` and `incidentSeverity` rank the firing alerts' severities for the title and the tone. */
export interface AlertCardOptions extends Pick<AlertsConfig, "severities" | "incidentSeverity"> {
  now: number;
  timeZone: string;
  maxAlertsShown: number;
  correlationWindowMinutes: number;
  silenceMinutes: number;
}

/** A deploy shown on an alert card, and the version a rollback would return to. */
export interface Correlation {
  recent: Array<{ version: string; by: string; at: number }>;
  previousVersion?: string;
  /**
   * The newest deploy of `recent` while it is still the target's newest change: what Roll back undoes.
   * Its job id names the rollback, so every card pointing at the same deploy makes the same job.
   */
  cause?: { jobId: string; version: string };
  /** A rollback after the newest deploy of `recent`: rolling back again would bring that deploy back. */
  changedSince?: { version: string; by: string; at: number };
}

/** The tag of an image reference ("ghcr.io/acme/api:v1.42.0" → "v1.42.0"); the reference when untagged. */
export function toVersion(image: string | undefined): string {
  if (!image) return "unknown version";
  const colon = image.lastIndexOf(":");
  return colon > image.lastIndexOf("/") ? image.slice(colon + 1) : image;
}

/** When a group began firing: its earliest alert's start (now when no alert says). */
export function firedAtOf(group: AlertGroupState, now: number): number {
  return group.alerts.reduce((m, a) => Math.min(m, a.startsAt || m), now);
}

/**
 * Deploys of the target that finished in the correlation window before the group fired, newest first,
 * and the version before the newest one (what "Roll back" returns to). A rollback is `rollout undo`, so
 * it undoes whatever changed the image last: it is only offered while that is still the newest deploy
 * named here. Scaling keeps the image and changes nothing about it. Pure.
 */
export function correlate(
  history: HistoryEntry[],
  firedAt: number,
  options: Pick<AlertCardOptions, "correlationWindowMinutes">,
): Correlation {
  const done = succeededNewestFirst(history);
  const from = firedAt - options.correlationWindowMinutes * 60_000;
  const deploys = done.filter((h) => h.kind === "deploy" && h.at >= from).slice(0, 3);
  const recent = deploys.map((h) => ({ version: toVersion(h.image), by: h.by, at: h.at }));
  const correlation: Correlation = { recent };
  const newest = deploys[0];
  if (!newest) return correlation;
  const lastChange = newestChange(done);
  if (lastChange && lastChange.jobId !== newest.jobId) {
    correlation.changedSince = { version: toVersion(lastChange.image), by: lastChange.by, at: lastChange.at };
    return correlation;
  }
  correlation.cause = { jobId: newest.jobId, version: toVersion(newest.image) };
  const current = done[0]?.image;
  const previous = done.find((h) => h.image && h.image !== current)?.image;
  if (previous) correlation.previousVersion = toVersion(previous);
  return correlation;
}

function clock(ms: number, timeZone: string): string {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone,
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
  }).format(ms);
}

function ago(ms: number, now: number): string {
  const minutes = Math.max(0, Math.round((now - ms) / 60_000));
  if (minutes < 1) return "just now";
  if (minutes < 120) return `${minutes} min ago`;
  return `${Math.round(minutes / 60)} h ago`;
}

export function toDurationLabel(minutes: number): string {
  return minutes % 60 === 0 ? `${minutes / 60}h` : `${minutes}m`;
}

function describeLabels(labels: Record<string, string>, hide: Set<string>): string {
  const shown = Object.entries(labels)
    .filter(([name]) => !hide.has(name))
    .slice(0, 6)
    .map(([name, value]) => `${name}=${value}`);
  return shown.length > 0 ? ` {${shown.join(", ")}}` : "";
}

/**
 * The severity a firing card shows, and whether it is drawn as severe: the highest among the firing
 * alerts, so an alert that has resolved no longer colours the card (incident mode follows firing alerts
 * too). An alert stored before alerts kept their severity counts as the group's, as cards were drawn then.
 */
function firingSeverity(
  firing: StoredAlert[],
  meta: AlertGroupMeta,
  options: Pick<AlertCardOptions, "severities" | "incidentSeverity">,
): { severity: string | undefined; critical: boolean } {
  let severity: string | undefined;
  let critical = false;
  for (const alert of firing) {
    const own = alert.severity === undefined ? meta.severity : (alert.severity ?? undefined);
    critical ||= alert.severity === undefined ? meta.critical : isIncidentSeverity(options, own);
    // As the processor picks the group's severity: a known one outranks an unknown, the first wins ties.
    if (
      own !== undefined &&
      (severity === undefined || severityRank(options, own) > severityRank(options, severity))
    )
      severity = own;
  }
  return { severity, critical };
}

/**
 * One alert group in one channel: what fires and since when, the deploys that may have caused it, who
 * acknowledged or silenced it, and the buttons. Resolved groups keep their history and lose the buttons.
 * Pure: the clock and the correlation are passed in.
 */
export function renderAlertCard(
  group: AlertGroupState,
  correlation: Correlation | undefined,
  options: AlertCardOptions,
): Card {
  const { meta } = group;
  const firing = group.alerts.filter((a) => a.status === "firing").sort((a, b) => a.startsAt - b.startsAt);
  const resolved = group.alerts.filter((a) => a.status === "resolved");
  const isFiring = firing.length > 0;
  const target = meta.service && meta.env ? `${meta.service}/${meta.env}` : undefined;
  const name = meta.alertname ?? (Object.values(meta.groupLabels).join(" ") || "alert group");
  // A resolved card keeps the group's severity, as it always has.
  const shown = isFiring ? firingSeverity(firing, meta, options) : meta;
  const what = [shown.severity ? `[${shown.severity}]` : undefined, name, target].filter(Boolean).join(" ");
  const since =
    firing[0]?.startsAt || group.alerts.reduce((m, a) => Math.min(m, a.startsAt || m), options.now);
  let card: Card;
  if (isFiring) {
    card = createCard(
      shown.critical ? "failure" : "warning",
      `🔥 ${what} · firing since ${clock(since, options.timeZone)}`,
    );
  } else {
    const ended = resolved.reduce((m, a) => Math.max(m, a.endsAt), 0) || options.now;
    card = createCard("success", `✅ ${what} · resolved at ${clock(ended, options.timeZone)}`);
  }
  card.lines.push(
    isFiring
      ? `${firing.length} firing${resolved.length > 0 ? ` · ${resolved.length} resolved` : ""}`
      : `all ${resolved.length} resolved`,
  );
  const hide = new Set(["alertname", ...Object.keys(meta.commonLabels)]);
  const listed = [...firing, ...resolved].slice(0, options.maxAlertsShown);
  for (const alert of listed) {
    const icon = alert.status === "firing" ? "•" : "✓";
    const label =
      alert.labels.alertname && alert.labels.alertname !== meta.alertname ? alert.labels.alertname : "";
    const when = alert.startsAt ? ` since ${clock(alert.startsAt, options.timeZone)}` : "";
    card.lines.push(
      `${icon} ${label}${describeLabels(alert.labels, hide)}${when}${alert.summary ? ` · ${alert.summary}` : ""}`.replace(
        /^(.) +/,
        "$1 ",
      ),
    );
  }
  const more = group.alerts.length - listed.length;
  if (more > 0) card.lines.push(`… and ${more} more`);
  // Alertmanager's max_alerts cut these from the notification: neither their status nor labels are known.
  if (group.truncated > 0) card.lines.push(`+ ${group.truncated} more not sent by Alertmanager`);

  const last = correlation?.recent[0];
  if (last) {
    card.lines.push(`Last deploy ${ago(last.at, options.now)} by ${last.by}: ${last.version}`);
    for (const earlier of correlation.recent.slice(1))
      card.lines.push(`Earlier: ${earlier.version} by ${earlier.by}, ${ago(earlier.at, options.now)}`);
  }
  const changed = correlation?.changedSince;
  if (changed)
    card.lines.push(
      `Since then: rolled back to ${changed.version} by ${changed.by}, ${ago(changed.at, options.now)}`,
    );
  // Incident mode follows each firing severe alert, not the group's highest severity: a critical alert
  // that resolved while a warning still fires has already lifted it. Alerts stored before the flag was
  // kept fall back to the group's severity.
  if (target && firing.some((a) => a.incident ?? meta.critical))
    card.lines.push(`${target} is now rollback-only until this resolves`);
  if (group.ack)
    card.lines.push(`Acknowledged by ${group.ack.by} at ${clock(group.ack.at, options.timeZone)}`);
  if (group.silence)
    card.lines.push(
      `Silenced by ${group.silence.by} until ${clock(group.silence.until, options.timeZone)} (silence ${group.silence.id})`,
    );

  if (isFiring) {
    const actions: CardAction[] = [];
    if (correlation?.cause && target)
      actions.push({
        id: "alert-rollback",
        label: correlation?.previousVersion ? `Roll back to ${correlation.previousVersion}` : "Roll back",
        value: group.cardId,
        style: "danger",
      });
    if (!group.ack)
      actions.push({ id: "alert-ack", label: "Acknowledge", value: group.cardId, style: "primary" });
    if (!group.silence || group.silence.until <= options.now)
      actions.push({
        id: "alert-silence",
        label: `Silence ${toDurationLabel(options.silenceMinutes)}`,
        value: group.cardId,
      });
    card.actions = actions;
  }
  card.footer = `alert ${group.cardId} · ${meta.receiver}`;
  return card;
}
