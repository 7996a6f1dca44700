import { type WebAPICallResult, WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import type { Card } from "../../core/card.ts";
import { ShipbotError } from "../../core/errors.ts";
import type { Conversation } from "../../core/model.ts";
import { type ChatPort, ChatRateLimitedError, type Pace } from "../../notify/chat-port.ts";
import { renderBlocks } from "./render-blocks.ts";
import type { SlackMethod } from "./slack-api.ts";
import { toSlackLogger } from "./to-slack-logger.ts";

export interface SlackClientOptions {
  botToken: string;
  /** Web API base URL; default https://slack.com/api/ (emulators and proxies override it). */
  apiUrl?: string;
  log: Logger;
  /** Per-request timeout; default 10 s. */
  timeoutMs?: number;
  /** Retries of 5xx and network failures; default 2. The client for chat.postMessage uses 0. */
  retries?: number;
}

/**
 * The Web API client shipbot uses for every call. A 429 is thrown to the caller instead of pausing the
 * client (the SDK's default pauses its whole queue, stalling every channel for one busy one); the
 * notifier then holds only that pace key. 5xx and network failures get two quick retries.
 */
export function createSlackWebClient(options: SlackClientOptions): WebClient {
  return new WebClient(options.botToken, {
    slackApiUrl: normaliseApiUrl(options.apiUrl),
    rejectRateLimitedCalls: true,
    retryConfig: {
      retries: options.retries ?? 2,
      factor: 2,
      minTimeout: 200,
      maxTimeout: 2_000,
      randomize: true,
    },
    timeout: options.timeoutMs ?? 10_000,
    logger: toSlackLogger(options.log),
  });
}

/** Seconds since the epoch as Slack's "seconds.micros" ts. */
function toTs(seconds: number): string {
  return Math.max(0, seconds).toFixed(6);
}

export function normaliseApiUrl(url: string | undefined): string {
  if (url === undefined || url === "") return "https://slack.com/api/";
  return url.endsWith("/") ? url : `${url}/`;
}

/** What to tell an operator for Slack errors that need a person to fix something. */
const fixes: Record<string, string> = {
  channel_not_found:
    "Slack cannot find that channel for the bot: invite the bot to it (`/invite @shipbot`) or, for a private channel, add the app in the channel's settings",
  not_in_channel: "the bot is not a member of that channel: invite it with `/invite @shipbot`",
  is_archived: "the channel is archived: unarchive it or run the command in another channel",
  invalid_auth:
    "Slack refused the bot token: check SLACK_BOT_TOKEN (the app's xoxb- token) and that the app is still installed",
  not_authed: "no bot token was sent: set SLACK_BOT_TOKEN",
  token_revoked: "the bot token was revoked: reinstall the app and update SLACK_BOT_TOKEN",
  token_expired: "the bot token expired: reinstall the app and update SLACK_BOT_TOKEN",
  account_inactive:
    "the bot token belongs to a deactivated app or user: reinstall the app and update SLACK_BOT_TOKEN",
  missing_scope:
    "the app lacks a scope it needs: reinstall it from manifests/slack/app-manifest.yaml so it gets every scope listed there",
  message_not_found: "the card's message was deleted in Slack; it cannot be edited any more",
};

/** Errors that will not go away by trying again: the notifier should not spin on them. */
const permanent = new Set([...Object.keys(fixes), "invalid_blocks", "invalid_blocks_format", "msg_too_long"]);

function errorCodeOf(error: unknown): string | undefined {
  return typeof error === "object" && error !== null
    ? ((error as { code?: unknown }).code as string)
    : undefined;
}

/**
 * Maps what the Web API client throws to shipbot's terms, once: 429 → ChatRateLimitedError (the
 * notifier's signal to wait), platform errors → a ShipbotError whose message says how to fix it,
 * HTTP and network failures → a retryable upstream error. Messages never carry the token.
 */
export function toSlackError(method: SlackMethod, error: unknown, channel?: string): Error {
  const code = errorCodeOf(error);
  if (code === "slack_webapi_rate_limited_error") {
    const seconds = Number((error as { retryAfter?: unknown }).retryAfter);
    return new ChatRateLimitedError(Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 1000, {
      cause: error,
    });
  }
  if (code === "slack_webapi_platform_error") {
    const data = (error as { data?: { error?: unknown; needed?: unknown } }).data;
    const slackError = typeof data?.error === "string" ? data.error : "unknown_error";
    const where = channel === undefined ? "" : ` (channel ${channel})`;
    const needed = typeof data?.needed === "string" ? ` (needed: ${data.needed})` : "";
    const fix = fixes[slackError];
    const message = `Slack ${method} failed with \`${slackError}\`${where}${needed}${fix ? `: ${fix}` : ""}`;
    // A deleted card is "not found": the notifier then posts a fresh one.
    const kind = slackError === "message_not_found" ? "not_found" : "upstream";
    return new ShipbotError(kind, message, { cause: error, retryable: !permanent.has(slackError) });
  }
  if (code === "slack_webapi_http_error") {
    const status = (error as { statusCode?: unknown }).statusCode;
    return new ShipbotError("upstream", `Slack ${method} answered HTTP ${String(status)}; will try again`, {
      cause: error,
      retryable: true,
    });
  }
  return new ShipbotError("upstream", `Slack ${method} could not be reached; will try again`, {
    cause: error,
    retryable: true,
  });
}

/** Every Web API call goes through here, named by a method from the scope table. */
export async function callSlack(
  client: WebClient,
  method: SlackMethod,
  args: Record<string, unknown>,
): Promise<WebAPICallResult> {
  try {
    return await client.apiCall(method, args);
  } catch (error) {
    throw toSlackError(method, error, typeof args.channel === "string" ? args.channel : undefined);
  }
}

export interface SlackPaceOptions {
  /** Spacing of posts to one channel; Slack allows about one per second per channel. Default 1100 ms. */
  postIntervalMs?: number;
  /** Spacing of chat.update calls across the workspace; Tier 3 is about 50 a minute. Default 1250 ms. */
  updateIntervalMs?: number;
}

export interface SlackChatOptions extends SlackPaceOptions {
  /**
   * The client for chat.postMessage: one that never retries (`createSlackWebClient({ retries: 0 })`). A post
   * that timed out may have been applied; the notifier looks for it before posting again, so the client
   * must not post a second time on its own. Default: the main client (its retries may duplicate a card).
   */
  postClient?: WebClient;
}

/** Marks shipbot's cards in Slack message metadata, so a post whose answer was lost can be found again. */
export const cardEventType = "shipbot_card";
/** Slack's ts lags or leads our clock a little; widen the lookup by this much on both sides (s). */
const lookupMarginSeconds = 30;
/** Pages read per lookup: Slack allows apps outside the Marketplace 1 call a minute, 15 messages each. */
const lookupPages = 2;

export interface SlackChat extends ChatPort {
  /** Shows a card to one person only (errors, answers to queries). */
  postEphemeral(conversation: Conversation, userId: string, card: Card): Promise<void>;
}

/**
 * Slack as a notifier target: a new card is a message at the channel root (or in the conversation's
 * thread), later states edit it in place with chat.update. The pace it reports is what the notifier
 * enforces across processes, so shipbot stays under Slack's limits instead of bouncing off them.
 */
export function createSlackChat(client: WebClient, pace: SlackChatOptions = {}): SlackChat {
  const postClient = pace.postClient ?? client;
  // Whole milliseconds: the notifier's Redis clock stores them as integers.
  const postIntervalMs = Math.max(1, Math.ceil(pace.postIntervalMs ?? 1100));
  const updateIntervalMs = Math.max(1, Math.ceil(pace.updateIntervalMs ?? 1250));
  return {
    async post(conversation, card, token) {
      const { text, blocks } = renderBlocks(card);
      const args: Record<string, unknown> = {
        channel: conversation.channel,
        text,
        blocks,
        unfurl_links: false,
        unfurl_media: false,
      };
      if (conversation.thread !== undefined) args.thread_ts = conversation.thread;
      if (token !== undefined) args.metadata = { event_type: cardEventType, event_payload: { token } };
      const result = await callSlack(postClient, "chat.postMessage", args);
      const ts = (result as { ts?: unknown }).ts;
      if (typeof ts !== "string" || ts === "") {
        throw new ShipbotError("upstream", "Slack chat.postMessage answered without a message ts");
      }
      return ts;
    },
    async find(conversation, token, window) {
      const args: Record<string, unknown> = {
        channel: conversation.channel,
        oldest: toTs(window.from / 1000 - lookupMarginSeconds),
        latest: toTs(window.to / 1000 + lookupMarginSeconds),
        inclusive: true,
        include_all_metadata: true,
        limit: 15,
      };
      for (let page = 0; page < lookupPages; page++) {
        // A card in a thread is a reply: only conversations.replies lists it.
        const result =
          conversation.thread === undefined
            ? await callSlack(client, "conversations.history", args)
            : await callSlack(client, "conversations.replies", { ...args, ts: conversation.thread });
        const messages = (result as { messages?: unknown }).messages;
        for (const message of Array.isArray(messages) ? messages : []) {
          const m = message as { ts?: unknown; metadata?: { event_type?: unknown; event_payload?: unknown } };
          const payload = m.metadata?.event_payload as { token?: unknown } | undefined;
          if (
            m.metadata?.event_type === cardEventType &&
            payload?.token === token &&
            typeof m.ts === "string"
          ) {
            return m.ts;
          }
        }
        const cursor = (result as { response_metadata?: { next_cursor?: unknown } }).response_metadata
          ?.next_cursor;
        if (typeof cursor !== "string" || cursor === "") break;
        args.cursor = cursor;
      }
      return undefined;
    },
    async update(conversation, ref, card) {
      const { text, blocks } = renderBlocks(card);
      await callSlack(client, "chat.update", { channel: conversation.channel, ts: ref, text, blocks });
    },
    pace(operation, conversation): Pace {
      // Posts are limited per channel; chat.update is a per-method budget for the whole workspace.
      return operation === "post"
        ? { key: `slack:post:${conversation.channel}`, intervalMs: postIntervalMs }
        : { key: "slack:update", intervalMs: updateIntervalMs };
    },
    async postEphemeral(conversation, userId, card) {
      const { text, blocks } = renderBlocks(card);
      const args: Record<string, unknown> = { channel: conversation.channel, user: userId, text, blocks };
      if (conversation.thread !== undefined) args.thread_ts = conversation.thread;
      await callSlack(client, "chat.postEphemeral", args);
    },
  };
}
