import { z } from "zod";

/**
 * The `alerts` section of shipbot.yaml: where Alertmanager's alerts go, how they are tied to deploys and
 * when they put a target in incident mode. Imports only zod, so the same fragment can live in core.
 */

const labelName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "must be a Prometheus label name");

/** A label value to match exactly, or `{ regex }` matched against the whole value (as Alertmanager does). */
const labelMatcher = z.union([
  z.string().max(1024),
  z.strictObject({
    regex: z
      .string()
      .min(1)
      .max(1024)
      .refine(
        (source) => {
          try {
            new RegExp(`^(?:${source})$`);
            return true;
          } catch {
            return false;
          }
        },
        { message: "must be a valid regular expression" },
      ),
  }),
]);

const channelRef = z.strictObject({
  platform: z.enum(["slack", "teams", "shell"]),
  /** Slack channel id (C…), Teams conversation id, or a shell session name. */
  channel: z.string().min(1).max(256),
});

export const alertsConfigSchema = z.strictObject({
  /** Every route whose labels all match sends the group to its channels; none matching: `default`. */
  routes: z
    .array(
      z.strictObject({
        match: z.record(labelName, labelMatcher),
        channels: z.array(channelRef).min(1),
      }),
    )
    .default([]),
  default: z.array(channelRef).default([]),
  /** Deploys of the alert's service×environment this long before it fired are named on its card. */
  correlationWindowMinutes: z
    .int()
    .min(1)
    .max(7 * 24 * 60)
    .default(60),
  /** A firing alert at or above this severity puts its service×environment in incident mode (rollbacks only). */
  incidentSeverity: z.string().min(1).max(64).default("critical"),
  /** Severities from lowest to highest; unknown ones rank below all. */
  severities: z.array(z.string().min(1).max(64)).min(1).default(["info", "warning", "error", "critical"]),
  /** How long the Silence button silences the group in Alertmanager. */
  silenceMinutes: z
    .int()
    .min(1)
    .max(30 * 24 * 60)
    .default(60),
  /** Which alert labels name the service, the environment and the severity. */
  labels: z
    .strictObject({
      service: labelName.default("service"),
      env: labelName.default("env"),
      severity: labelName.default("severity"),
    })
    .default({ service: "service", env: "env", severity: "severity" }),
  /** Times on cards ("firing since 14:02") are shown in this IANA zone. */
  timeZone: z
    .string()
    .refine(
      (tz) => {
        try {
          new Intl.DateTimeFormat("en-US", { timeZone: tz });
          return true;
        } catch {
          return false;
        }
      },
      { message: "must be an IANA time zone such as Europe/Berlin or UTC" },
    )
    .default("UTC"),
  /** Alerts listed one by one on a card; the rest are counted. */
  maxAlertsShown: z.int().min(1).max(20).default(5),
  /** Changes to a card within this long are rendered as one edit (a critical group's first post is immediate). */
  updateDelayMs: z.int().min(0).max(60_000).default(2_000),
});

export type AlertsConfig = z.infer<typeof alertsConfigSchema>;
export type AlertChannel = AlertsConfig["default"][number];

/** The defaults, for installs whose configuration has no `alerts` section. */
export const defaultAlertsConfig: AlertsConfig = alertsConfigSchema.parse({});

function matches(
  matcher: AlertsConfig["routes"][number]["match"][string],
  value: string | undefined,
): boolean {
  if (typeof matcher === "string") return value === matcher;
  return new RegExp(`^(?:${matcher.regex})$`).test(value ?? "");
}

/** Channels an alert group with these labels goes to (deduplicated, in route order). Pure. */
export function routeAlert(config: AlertsConfig, labels: Record<string, string>): AlertChannel[] {
  const hits = config.routes
    .filter((route) => Object.entries(route.match).every(([name, m]) => matches(m, labels[name])))
    .flatMap((route) => route.channels);
  const chosen = hits.length > 0 ? hits : config.default;
  const seen = new Set<string>();
  return chosen.filter((c) => {
    const key = `${c.platform}\n${c.channel}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Rank of a severity in the configured order; -1 when unknown. */
export function severityRank(config: AlertsConfig, severity: string | undefined): number {
  return severity === undefined ? -1 : config.severities.indexOf(severity);
}

export function isIncidentSeverity(config: AlertsConfig, severity: string | undefined): boolean {
  const threshold = severityRank(config, config.incidentSeverity);
  const rank = severityRank(config, severity);
  return rank >= 0 && threshold >= 0 && rank >= threshold;
}
