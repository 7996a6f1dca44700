import type { Redis } from "ioredis";
import type { Keys } from "../queue/keys.ts";
import { createAlertKeys } from "./alert-keys.ts";
import type { WebhookPayload } from "./alertmanager-payload.ts";

/** Entries the inbox keeps at most (approximately); processed entries are deleted as they are done. */
export const inboxMaxLength = 100_000;

export interface AlertInbox {
  /** One XADD: the webhook answers as soon as the payload is durable in Redis. */
  push(payload: WebhookPayload): Promise<void>;
}

export function createAlertInbox(redis: Redis, keys: Pick<Keys, "prefix">): AlertInbox {
  const { inbox } = createAlertKeys(keys);
  return {
    async push(payload) {
      await redis.xadd(inbox, "MAXLEN", "~", inboxMaxLength, "*", "p", JSON.stringify(payload));
    },
  };
}
