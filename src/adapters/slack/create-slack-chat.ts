import { type WebAPICallResult, WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import type { Card, CardTone } from "../../core/card.ts";
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
  /** For POSTs to a response_url; default the global fetch. */
  fetch?: typeof fetch;
  /** Our clock in ms, to tell whether a response_url still works. */
  now?: () => number;
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

/** Slack errors that mean the bot cannot post in the conversation at all, whatever the message. */
const cannotPostHere = new Set(["not_in_channel", "channel_not_found", "is_archived"]);
/**
 * The reference of a card shown only to the person who asked, through their command's response_url:
 * `private:<Slack error>`. It names why (for the same line on the outcome) and never the URL; it is no ts,
 * so nothing ever tries to edit or thread under it in Slack.
 */
const privateRefPrefix = "private:";
/** Job and batch cards take these tones only once they are final: the one edit worth a response_url use. */
const finalTones: ReadonlySet<CardTone> = new Set(["success", "failure", "warning"]);

function fromPrivateRef(ref: string | undefined): string | undefined {
  return ref?.startsWith(privateRefPrefix) ? ref.slice(privateRefPrefix.length) : undefined;
}

/** The thread to post into: a reply under a card shown only privately has none in Slack, so it goes to the channel. */
function threadOf(conversation: Conversation): string | undefined {
  return fromPrivateRef(conversation.thread) === undefined ? conversation.thread : undefined;
}

/** The Slack error code behind a ShipbotError made by toSlackError. */
function slackErrorOf(error: unknown): string | undefined {
  const data = (error as { cause?: { data?: { error?: unknown } } } | undefined)?.cause?.data;
  return typeof data?.error === "string" ? data.error : undefined;
}

/** The card as the person sees it privately: the same card, and one line saying what to do. */
function toPrivateCard(card: Card, reason: string): Card {
  const fix = fixes[reason] ?? "invite the bot to this channel with `/invite @shipbot`";
  return { ...card, lines: [...card.lines, `🔒 Only you can see this: ${fix}`] };
}

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
  const fetchUrl = pace.fetch ?? fetch;
  const now = pace.now ?? Date.now;
  // Whole milliseconds: the notifier's Redis clock stores them as integers.
  const postIntervalMs = Math.max(1, Math.ceil(pace.postIntervalMs ?? 1100));
  const updateIntervalMs = Math.max(1, Math.ceil(pace.updateIntervalMs ?? 1250));

  /**
   * Shows a card to the person who ran the command, through its response_url. Errors never carry the URL:
   * it is a capability. A refusal (used five times, expired, revoked) is final; 5xx and network failures
   * are tried again by the notifier.
   */
  async function respondPrivately(conversation: Conversation, reason: string, card: Card): Promise<void> {
    const target = conversation.responseUrl;
    if (target === undefined || now() >= target.expiresAt) {
      throw new ShipbotError(
        "upstream",
        `the card could be shown only privately, and the command's response_url is no longer usable (Slack takes it for 30 minutes): the person cannot be told (${reason}${fixes[reason] ? `: ${fixes[reason]}` : ""})`,
        { retryable: false },
      );
    }
    const { text, blocks } = renderBlocks(toPrivateCard(card, reason));
    let status: number;
    try {
      const res = await fetchUrl(target.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ response_type: "ephemeral", replace_original: false, text, blocks }),
        signal: AbortSignal.timeout(10_000),
      });
      status = res.status;
      await res.body?.cancel();
    } catch {
      throw new ShipbotError("upstream", "Slack's response_url could not be reached; will try again", {
        retryable: true,
      });
    }
    if (status >= 200 && status < 300) return;
    throw new ShipbotError("upstream", `Slack's response_url answered HTTP ${status}`, {
      retryable: status >= 500,
    });
  }

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
      const thread = threadOf(conversation);
      if (thread !== undefined) args.thread_ts = thread;
      if (token !== undefined) args.metadata = { event_type: cardEventType, event_payload: { token } };
      let result: WebAPICallResult;
      try {
        result = await callSlack(postClient, "chat.postMessage", args);
      } catch (error) {
        // The bot cannot post here (not invited, a DM between people, archived): the person who ran the
        // command sees the card privately instead, with what to do, rather than nothing at all.
        const reason = slackErrorOf(error);
        if (reason === undefined || !cannotPostHere.has(reason) || conversation.responseUrl === undefined)
          throw error;
        await respondPrivately(conversation, reason, card);
        return `${privateRefPrefix}${reason}`;
      }
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
        const thread = threadOf(conversation);
        const result =
          thread === undefined
            ? await callSlack(client, "conversations.history", args)
            : await callSlack(client, "conversations.replies", { ...args, ts: thread });
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
      const reason = fromPrivateRef(ref);
      if (reason !== undefined) {
        // Never posted in the channel, so nothing to edit there. A response_url takes five uses in 30
        // minutes: the states in between are skipped and only the outcome is shown, once more, privately.
        if (finalTones.has(card.tone)) await respondPrivately(conversation, reason, card);
        return;
      }
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
