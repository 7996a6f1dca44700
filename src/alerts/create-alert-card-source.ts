import type { Redis } from "ioredis";
import type { CardSource } from "../notify/create-notifier.ts";
import type { HistoryEntry } from "../notify/status-store.ts";
import type { Keys } from "../queue/keys.ts";
import { fromGroupHash } from "./alert-group.ts";
import { alertCardPrefix, createAlertKeys } from "./alert-keys.ts";
import type { AlertsConfig } from "./alerts-config.ts";
import { correlate, firedAtOf, renderAlertCard } from "./render-alert-card.ts";

export interface AlertCardSourceOptions {
  redis: Redis;
  keys: Pick<Keys, "prefix">;
  config: AlertsConfig;
  /** The target's last operations (StatusStore.history). */
  history(service: string, env: string, count: number): Promise<HistoryEntry[]>;
  now?: () => number;
}

/** Alert group cards for the notifier: ids start with "a"; the snapshot is rendered from Redis each time. */
export function createAlertCardSource(options: AlertCardSourceOptions): CardSource {
  const alertKeys = createAlertKeys(options.keys);
  const now = options.now ?? Date.now;
  const { config } = options;
  return {
    prefix: alertCardPrefix,
    async load(cardId) {
      const group = fromGroupHash(cardId, await options.redis.hgetall(alertKeys.group(cardId)));
      if (!group) return undefined;
      const cardOptions = {
        now: now(),
        timeZone: config.timeZone,
        maxAlertsShown: config.maxAlertsShown,
        correlationWindowMinutes: config.correlationWindowMinutes,
        silenceMinutes: config.silenceMinutes,
        severities: config.severities,
        incidentSeverity: config.incidentSeverity,
      };
      const { service, env } = group.meta;
      const firedAt = firedAtOf(group, cardOptions.now);
      const correlation =
        service && env ? correlate(await options.history(service, env, 20), firedAt, cardOptions) : undefined;
      return {
        seq: group.seq,
        conversation: group.meta.conversation,
        card: renderAlertCard(group, correlation, cardOptions),
      };
    },
  };
}
