import type { Card } from "../core/card.ts";
import type { Conversation } from "../core/model.ts";

export type ChatOperation = "post" | "update";

/** A platform's limit on one kind of call: at most one call per `intervalMs` for everything sharing `key`. */
export interface Pace {
  key: string;
  intervalMs: number;
}

/** When a post may have happened: from the first attempt to the last (ms since epoch). */
export interface PostWindow {
  from: number;
  to: number;
}

/** What the notifier needs from a chat platform: post a card, then edit it in place. */
export interface ChatPort {
  /**
   * Posts a new message and returns a reference that `update` accepts (Slack ts, Teams activity id…).
   * `token`, when given, is carried by the message in a way `find` can recognise. A port must not retry a
   * post on its own after a timeout: the post may have been applied, and only the notifier looks first.
   * A `ChatRateLimitedError` from a post means the platform applied nothing: the notifier does not look
   * for that attempt's message.
   */
  post(conversation: Conversation, card: Card, token?: string): Promise<string>;
  /**
   * Finds the message a post carrying `token` made within `window`, if the platform applied it although
   * its answer was lost. Absent when the platform offers no such lookup.
   */
  find?(conversation: Conversation, token: string, window: PostWindow): Promise<string | undefined>;
  update(conversation: Conversation, ref: string, card: Card): Promise<void>;
  /**
   * The platform's pacing for a call, enforced by the notifier across all processes (e.g. Slack: one
   * post per second per channel). Undefined: no pacing.
   */
  pace?(operation: ChatOperation, conversation: Conversation): Pace | undefined;
}

export type ChatPorts = Partial<Record<Conversation["platform"], ChatPort>>;

/**
 * Thrown by a chat port when the platform answered "too many requests". The notifier waits that long
 * for this pace key only; other conversations carry on.
 */
export class ChatRateLimitedError extends Error {
  override readonly name = "ChatRateLimitedError";
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number, options?: { cause?: unknown }) {
    super(`rate limited; retry after ${retryAfterMs} ms`, options);
    this.retryAfterMs = retryAfterMs;
  }
}

export function isChatRateLimitedError(error: unknown): error is ChatRateLimitedError {
  return (
    error instanceof ChatRateLimitedError ||
    (typeof error === "object" &&
      error !== null &&
      (error as { name?: unknown }).name === "ChatRateLimitedError")
  );
}
