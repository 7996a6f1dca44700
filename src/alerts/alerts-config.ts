import type { z } from "zod";
import { alertsConfigSchema } from "../core/config.ts";

/**
 * The `alerts` section of shipbot.yaml (its schema lives with the rest of the config in core): where
 * Alertmanager's alerts go, how they are tied to deploys and when they put a target in incident mode.
 */
export { alertsConfigSchema };

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
export function severityRank(config: Pick<AlertsConfig, "severities">, severity: string | undefined): number {
  return severity === undefined ? -1 : config.severities.indexOf(severity);
}

export function isIncidentSeverity(
  config: Pick<AlertsConfig, "severities" | "incidentSeverity">,
  severity: string | undefined,
): boolean {
  const threshold = severityRank(config, config.incidentSeverity);
  const rank = severityRank(config, severity);
  return rank >= 0 && threshold >= 0 && rank >= threshold;
}
