import type { Redis } from "ioredis";
import { z } from "zod";
import {
  fromMirrorCardId,
  mirrorCardPrefix,
  mirrorsFor,
  renderMirrorCard,
  toMirrorCardId,
} from "../core/approval-mirror.ts";
import type { Config } from "../core/config.ts";
import { type Conversation, conversationSchema, type JobState } from "../core/model.ts";
import type { Keys } from "../queue/keys.ts";
import type { CardSource, JobCardFollower } from "./create-notifier.ts";
import type { StatusStore } from "./status-store.ts";

/** Marks the mirror cards due now by Redis's clock (the one the claim script reads), keeping earlier marks. */
const markScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, id in ipairs(ARGV) do redis.call('ZADD', KEYS[1], 'LT', now, id) end
return #ARGV
`;

type MirrorRedis = Redis & { shipbotMarkMirrors(cards: string, ...ids: string[]): Promise<number> };

const storedSchema = z.array(conversationSchema).max(10);

/** As long as a card's reference: a week. */
const storedSeconds = 7 * 24 * 3600;

export interface ApprovalMirrors {
  /** Renders `m-<n>-<job id>` into the n-th mirror conversation. */
  source: CardSource;
  /** Given to the notifier: marks a job's mirrors whenever the job's own card renders. */
  follower: JobCardFollower;
}

/**
 * Approval requests shown in more conversations than the one they were asked in (an environment's
 * `approval.mirrorTo`), each copy with working Approve and Reject buttons and edited in place with the
 * original until the operation ends.
 *
 * The copies follow the job's own card instead of being marked by the scripts that change the job's
 * state: every transition already marks that card, so whenever the notifier renders it (the request, each
 * decision, expiry, queued, running, the final state) it marks the mirrors too, and each mirror renders
 * the job's newest state into its conversation. Nothing is added to the accept path, the worker or the
 * deriver; jobs of environments without mirrors cost nothing. The conversations are stored with the job
 * the first time its request renders, so a configuration changed meanwhile does not strand a copy on
 * "pending" or move it to another conversation.
 */
export function createApprovalMirrors(options: {
  redis: Redis;
  keys: Keys;
  config: Config;
  status: Pick<StatusStore, "read">;
}): ApprovalMirrors {
  const { redis, keys, config, status } = options;
  const r = redis as MirrorRedis;
  if (typeof r.shipbotMarkMirrors !== "function")
    redis.defineCommand("shipbotMarkMirrors", { numberOfKeys: 1, lua: markScript });
  const storedKey = (jobId: string) => `${keys.cardRef(jobId)}:mirrors`;

  async function load(jobId: string): Promise<Conversation[] | undefined> {
    const raw = await redis.get(storedKey(jobId));
    if (raw === null) return undefined;
    const parsed = storedSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  }

  /**
   * Only a job that is or may have been an approval request can have mirrors: looking them up for every
   * other job would cost a read per card. A configured environment is always looked up, and so are
   * requests that ended (a request rejected, expired or superseded ends cancelled or superseded).
   */
  function mayHaveMirrors(state: JobState, configured: boolean): boolean {
    return (
      configured ||
      state.phase === "pending-approval" ||
      state.approvedBy !== undefined ||
      state.phase === "cancelled" ||
      state.phase === "superseded"
    );
  }

  return {
    source: {
      prefix: mirrorCardPrefix,
      async load(cardId) {
        const parsed = fromMirrorCardId(cardId);
        if (!parsed) return undefined;
        const [targets, state] = await Promise.all([load(parsed.jobId), status.read(parsed.jobId)]);
        const conversation = targets?.[parsed.index];
        if (!state || !conversation) return undefined;
        return {
          seq: state.seq,
          conversation,
          card: renderMirrorCard(state),
          traceRef: state.data.traceId,
        };
      },
    },
    follower: {
      async follow(state) {
        const configured = mirrorsFor(config, state.data);
        if (!mayHaveMirrors(state, configured.length > 0)) return;
        let targets = await load(state.jobId);
        if (targets === undefined) {
          // Mirrors start with the request: a job first rendered in any other state never was one here.
          if (state.phase !== "pending-approval" || configured.length === 0) return;
          const created = await redis.set(
            storedKey(state.jobId),
            JSON.stringify(configured),
            "EX",
            storedSeconds,
            "NX",
          );
          targets = created === "OK" ? configured : await load(state.jobId);
          if (targets === undefined) return;
        }
        if (targets.length === 0) return;
        await r.shipbotMarkMirrors(keys.cards, ...targets.map((_, i) => toMirrorCardId(i, state.jobId)));
      },
    },
  };
}
