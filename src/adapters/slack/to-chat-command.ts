import { type Conversation, responseUrlSchema } from "../../core/model.ts";
import type { SlackSlashCommand } from "./slack-api.ts";

/**
 * Pure translations from Slack payload fields to shipbot's terms. Identity is always the user id from
 * the signed payload (`slack:U…`); display names are carried for cards only.
 */

export function toSlackPrincipal(userId: string): string {
  return `slack:${userId}`;
}

/** `/deploy api staging v2` → `deploy api staging v2`; `/shipbot <anything>` → `<anything>` (empty: help). */
export function fromSlashCommand(command: SlackSlashCommand, text: string): string {
  const rest = fromSlackText(text).trim();
  if (command === "/shipbot") return rest === "" ? "help" : rest;
  const name = command.slice(1);
  return rest === "" ? name : `${name} ${rest}`;
}

/** Mentions at the start of a message, bare (`<@U1>`) or with the name Slack may add (`<@U1|ada>`). */
const leadingMentions = /^\s*(<@[A-Z0-9]+(\|[^>]*)?>\s*)+/;

/**
 * `<@U0BOT> deploy api staging` → `deploy api staging`. Takes what follows the bot's own mention, so
 * "hey <@U0BOT> status api" works too; when nothing follows it, the request is what precedes it
 * ("status api <@U0BOT>"). The mention may carry the bot's name (`<@U0BOT|shipbot>`). Without the
 * bot's id, leading mentions are dropped.
 */
export function fromMention(text: string, botUserId: string | undefined): string {
  const id = botUserId?.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const own = id === undefined ? null : new RegExp(`<@${id}(\\|[^>]*)?>`).exec(text);
  let rest = text.replace(leadingMentions, "");
  if (own) {
    const after = text.slice(own.index + own[0].length);
    rest = after.trim() === "" ? text.slice(0, own.index).replace(leadingMentions, "") : after;
  }
  const command = fromSlackText(rest).trim();
  return command === "" ? "help" : command;
}

/**
 * Undoes Slack's message formatting: `<https://x|x>` → `x`, `<#C1|name>` → `#name`, and the three
 * escaped characters. Slack rewrites text that looks like a link, which would otherwise reach the
 * command parser as `<http://v2.example.com|v2.example.com>`.
 */
export function fromSlackText(text: string): string {
  return text
    .replace(/<([^<>|]*)\|([^<>]*)>/g, (_m, target: string, label: string) =>
      target.startsWith("#") ? `#${label}` : label,
    )
    .replace(/<(https?:[^<>]*|mailto:[^<>]*)>/g, "$1")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/**
 * Where a command's job card goes. A slash command has no thread: its card becomes a thread root. A
 * mention inside a thread keeps the card in that thread; a top-level mention gets its card as a reply
 * under the mention, so the channel shows one line per request.
 */
export function toConversation(channel: string, thread: string | undefined): Conversation {
  return thread === undefined ? { platform: "slack", channel } : { platform: "slack", channel, thread };
}

/** Slack takes a slash command's (or a click's) response_url for 30 minutes, at most five times. */
export const responseUrlLifetimeMs = 30 * 60_000;

/**
 * A conversation that also carries the request's `response_url`, so the person can be told privately when
 * the bot cannot post there. A URL that does not fit the job payload's schema (`responseUrlSchema`) is left
 * out: the job then behaves as before, rather than being dropped by the worker.
 */
export function withResponseUrl(
  conversation: Conversation,
  url: string | undefined,
  receivedAt: number,
): Conversation {
  if (url === undefined || !responseUrlSchema.safeParse(url).success) return conversation;
  return { ...conversation, responseUrl: { url, expiresAt: receivedAt + responseUrlLifetimeMs } };
}
