import type { Redis } from "ioredis";
import { fromReminderCardId, reminderCardPrefix, renderReminderCard } from "../core/approval-reminder.ts";
import type { Config } from "../core/config.ts";
import type { Conversation } from "../core/model.ts";
import type { Keys } from "../queue/keys.ts";
import type { CardSource } from "./create-notifier.ts";
import { fromStateHash } from "./status-store.ts";

/** How long a reminder waits for its request's card to be posted before looking again. */
const waitForCardMs = 1_000;

/**
 * The thread a reply to the card `ref` in `conversation` goes into. A Teams channel conversation always
 * names its reply chain (`;messageid=<root>`), so a Teams one without a thread is a personal or group
 * chat: those have no reply chains and the port posts into the chat itself. The reply keeps the chat's
 * conversation then, so it is paced under the chat's key with the chat's cards; a thread of the card's
 * id would give every reminder a pace key of its own, outside the chat's budget.
 */
function replyThreadOf(conversation: Conversation, ref: string): string | undefined {
  if (conversation.thread !== undefined) return conversation.thread;
  return conversation.platform === "teams" ? undefined : ref;
}

/**
 * Approval reminders for the notifier (`r-<job id>`, marked by the sweeper's remind script): a reply in
 * the thread of the request's card, so the platform notifies people where an edit of the card would not.
 * The reply goes where replies to that card go: into the card's own thread when it already sits in one
 * (Slack threads and Teams reply chains are one level deep), else under the card itself, except in Teams
 * chats, which have no reply chains (see `replyThreadOf`). It is rendered once (a fixed seq); a request
 * decided or expired by then gets nothing.
 */
export function createReminderCardSource(options: {
  redis: Redis;
  keys: Keys;
  config: Config;
  now?: () => number;
}): CardSource {
  const { redis, keys, config } = options;
  const now = options.now ?? Date.now;
  return {
    prefix: reminderCardPrefix,
    async load(cardId) {
      const jobId = fromReminderCardId(cardId);
      if (jobId === undefined) return undefined;
      const [hash, counted] = await Promise.all([
        redis.hgetall(keys.job(jobId)),
        redis.scard(`${keys.job(jobId)}:voters`),
      ]);
      const state = fromStateHash(jobId, hash);
      const expiresAt = Number(hash.expiresAt ?? 0);
      const at = now();
      if (state?.phase !== "pending-approval" || at >= expiresAt) return undefined;
      const stored = await redis.get(keys.cardRef(jobId));
      // The request's card is not posted yet (a busy notifier): the reply needs its reference.
      if (stored === null) return { retryInMs: waitForCardMs };
      const { ref } = JSON.parse(stored) as { ref: string };
      const { conversation } = state.data;
      const thread = replyThreadOf(conversation, ref);
      return {
        seq: 1,
        conversation: thread === undefined ? conversation : { ...conversation, thread },
        card: renderReminderCard(
          config,
          {
            data: state.data,
            expiresAt,
            need: Number(hash.need ?? 1),
            counted,
            from: (hash.from ?? "").split(",").filter(Boolean),
            distinct: hash.distinct === "1",
            used: (hash.groups ?? "").split(",").filter(Boolean),
          },
          at,
        ),
        traceRef: state.data.traceId,
      };
    },
  };
}
