import { setTimeout as sleep } from "node:timers/promises";
import type { Card } from "../../core/card.ts";
import { ShipbotError } from "../../core/errors.ts";
import type { Conversation } from "../../core/model.ts";
import { type ChatPort, ChatRateLimitedError, type Pace } from "../../notify/chat-port.ts";
import type { ConversationStore, TeamsConversationReference } from "./conversation-store.ts";
import { adaptiveCardContentType, renderAdaptiveCard, renderPlainText } from "./render-adaptive-card.ts";
import { toConversationId } from "./to-chat-command.ts";

/** An outgoing message activity carrying one card. */
export interface CardActivity {
  type: "message";
  summary: string;
  attachments: Array<{ contentType: typeof adaptiveCardContentType; content: unknown }>;
}

/** The two connector calls the chat port needs, behind the SDK that makes them. */
export interface TeamsConnector {
  /** Sends into the conversation (a reply chain when the id carries `;messageid=`); returns the activity id. */
  send(
    reference: TeamsConversationReference,
    conversationId: string,
    activity: CardActivity,
  ): Promise<string>;
  update(
    reference: TeamsConversationReference,
    conversationId: string,
    activityId: string,
    activity: CardActivity,
  ): Promise<void>;
}

export interface TeamsPaceOptions {
  /**
   * Spacing of calls into one conversation (a channel reply chain, a chat). Teams allows a bot about
   * 7 operations a second but only 1,800 an hour per thread; one call every 2 s is exactly the hourly
   * budget, so a busy thread can never run out of it. Default 2000 ms.
   */
  intervalMs?: number;
}

export interface TeamsRetryOptions {
  /** Attempts for 412, 502 and 504 (Teams asks for these to be retried); default 3. */
  attempts?: number;
  /** First backoff; it doubles each attempt, with full jitter. Default 250 ms. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Wait after a 429 without Retry-After; jittered up to twice this. Default 1000 ms. */
  rateLimitedDelayMs?: number;
}

/** Statuses Teams documents as transient besides 429: retried here with backoff. */
const retriedStatuses = new Set([412, 502, 504]);

export function statusOf(error: unknown): number | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const e = error as { statusCode?: unknown; status?: unknown; response?: { status?: unknown } };
  const status = e.statusCode ?? e.response?.status ?? e.status;
  return typeof status === "number" ? status : undefined;
}

/** Retry-After in ms (seconds or an HTTP date), or undefined when absent or unreadable. */
export function retryAfterOf(error: unknown, now: number = Date.now()): number | undefined {
  const headers = (error as { response?: { headers?: unknown } } | undefined)?.response?.headers as
    | { get?: (name: string) => string | undefined | null }
    | Record<string, unknown>
    | undefined;
  if (headers === undefined || headers === null) return undefined;
  const raw =
    typeof headers.get === "function"
      ? (headers.get as (name: string) => unknown)("retry-after")
      : (headers as Record<string, unknown>)["retry-after"];
  if (typeof raw !== "string" || raw.trim() === "") return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds * 1000));
  const at = Date.parse(raw);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/**
 * Maps a failed connector call to shipbot's terms, once: 429 → ChatRateLimitedError (the notifier
 * holds this conversation's pace key only), 404 → not_found (the notifier posts a fresh card), refusals
 * that a retry cannot fix → not retryable, the rest → retryable upstream. Messages carry no token.
 */
export function toTeamsError(operation: string, error: unknown, rateLimitedDelayMs = 1000): Error {
  const status = statusOf(error);
  if (status === 429) {
    const retryAfter =
      retryAfterOf(error) ?? rateLimitedDelayMs + Math.floor(Math.random() * rateLimitedDelayMs);
    return new ChatRateLimitedError(Math.max(1, retryAfter), { cause: error });
  }
  if (status === 404) {
    return new ShipbotError("not_found", `Teams ${operation}: the message or conversation is gone`, {
      cause: error,
      retryable: false,
    });
  }
  if (status === 401 || status === 403) {
    return new ShipbotError(
      "upstream",
      `Teams ${operation} refused the bot (HTTP ${status}): check MicrosoftAppId, MicrosoftAppPassword and MicrosoftAppTenantId, and that the app is installed where the card goes`,
      { cause: error, retryable: false },
    );
  }
  if (status === 400 || status === 413) {
    return new ShipbotError("upstream", `Teams ${operation} rejected the message (HTTP ${status})`, {
      cause: error,
      retryable: false,
    });
  }
  const what = status === undefined ? "could not be reached" : `answered HTTP ${status}`;
  return new ShipbotError("upstream", `Teams ${operation} ${what}; will try again`, {
    cause: error,
    retryable: true,
  });
}

/**
 * Runs one connector call, retrying 412/502/504 with exponential backoff and full jitter. Anything
 * else (429 included: the notifier waits without holding a worker) is mapped by toTeamsError.
 */
export async function callTeams<T>(
  operation: string,
  call: () => Promise<T>,
  options: TeamsRetryOptions = {},
): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 3);
  const base = options.baseDelayMs ?? 250;
  const max = options.maxDelayMs ?? 4_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const status = statusOf(error);
      if (status === undefined || !retriedStatuses.has(status) || attempt >= attempts) {
        throw toTeamsError(operation, error, options.rateLimitedDelayMs);
      }
      await sleep(Math.floor(Math.random() * Math.min(max, base * 2 ** (attempt - 1))));
    }
  }
}

export function toCardActivity(card: Card): CardActivity {
  return {
    type: "message",
    summary: renderPlainText(card, 200),
    attachments: [{ contentType: adaptiveCardContentType, content: renderAdaptiveCard(card) }],
  };
}

/**
 * Where a message for `conversation` goes. A reply to a card (its thread: the card's activity id) is a
 * reply chain in a channel; personal and group chats have no reply chains, so there it goes into the chat.
 */
export function targetIdOf(reference: TeamsConversationReference, conversation: Conversation): string {
  const chat = reference.conversationType === "personal" || reference.conversationType === "groupChat";
  return chat ? conversation.channel : toConversationId(conversation);
}

export interface TeamsChatOptions {
  connector: TeamsConnector;
  conversations: ConversationStore;
  pace?: TeamsPaceOptions;
  retry?: TeamsRetryOptions;
}

/**
 * Teams as a notifier target: a new card is an Adaptive Card message sent into the conversation (or
 * reply chain), later states replace it with updateActivity. The conversation's serviceUrl comes from
 * the reference stored in Redis when the bot last heard from it, so any process can post.
 */
export function createTeamsChat(options: TeamsChatOptions): ChatPort {
  const { connector, conversations } = options;
  // Whole milliseconds: the notifier's Redis clock stores them as integers.
  const intervalMs = Math.max(1, Math.ceil(options.pace?.intervalMs ?? 2000));

  async function referenceOf(conversation: Conversation): Promise<TeamsConversationReference> {
    const reference = await conversations.load(conversation.channel);
    if (reference === undefined) {
      throw new ShipbotError(
        "not_found",
        `no Teams conversation reference for ${conversation.channel}: the bot can post only where it has received a message`,
        { retryable: false },
      );
    }
    return reference;
  }

  return {
    async post(conversation, card) {
      const reference = await referenceOf(conversation);
      const id = await callTeams(
        "send",
        () => connector.send(reference, targetIdOf(reference, conversation), toCardActivity(card)),
        options.retry,
      );
      if (id === "")
        throw new ShipbotError("upstream", "Teams accepted the card but returned no activity id");
      return id;
    },
    async update(conversation, ref, card) {
      const reference = await referenceOf(conversation);
      await callTeams(
        "updateActivity",
        () => connector.update(reference, targetIdOf(reference, conversation), ref, toCardActivity(card)),
        options.retry,
      );
    },
    pace(_operation, conversation): Pace {
      // Posts and edits count against the same per-thread budget, so they share one key.
      return { key: `teams:${toConversationId(conversation)}`, intervalMs };
    },
  };
}
