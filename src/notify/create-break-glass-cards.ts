import type { Redis } from "ioredis";
import { breakGlassCardPrefix, fromBreakGlassCardId, renderBreakGlassCard } from "../core/break-glass.ts";
import type { Config } from "../core/config.ts";
import type { Keys } from "../queue/keys.ts";
import type { CardSource } from "./create-notifier.ts";
import { fromStateHash } from "./status-store.ts";

/**
 * Break-glass posts for the environment's audit channel, rendered by the notifier like any card: the
 * request and the approval are posted once each; the run is posted when it passes the freeze and edited
 * as it ends. Their producers (the accept path, the deriver, the acquire script) only mark the card id.
 */
export function createBreakGlassCardSource(options: {
  redis: Redis;
  keys: Keys;
  config: Config;
}): CardSource {
  return {
    prefix: breakGlassCardPrefix,
    async load(cardId) {
      const parsed = fromBreakGlassCardId(cardId);
      if (!parsed) return undefined;
      const hash = await options.redis.hgetall(options.keys.job(parsed.jobId));
      const state = fromStateHash(parsed.jobId, hash);
      const policy = state && options.config.environments[state.data.env]?.breakGlass;
      if (!state || !policy) return undefined;
      return {
        seq: parsed.event === "ran" ? state.seq : 1,
        conversation: { platform: policy.auditChannel.platform, channel: policy.auditChannel.channel },
        card: renderBreakGlassCard(parsed.event, state, hash.breakGlassFreeze),
        traceRef: state.data.traceId,
      };
    },
  };
}
