import type { Conversation } from "../../core/model.ts";

/**
 * Pure translations from Bot Framework activity fields to shipbot's terms. Identity is the sender's
 * Microsoft Entra object id from the authenticated activity (`teams:<aadObjectId>`); display names are
 * carried for cards only.
 */

/** The part of an activity entity a mention needs; everything else is ignored. */
export interface TeamsEntity {
  type?: unknown;
  text?: unknown;
  mentioned?: { id?: unknown } | undefined;
}

/** Entra object ids are GUIDs, compared case-insensitively; the configuration writes them lower case. */
export function toTeamsPrincipal(aadObjectId: string): string {
  return `teams:${aadObjectId.toLowerCase()}`;
}

const threadMarker = ";messageid=";

/**
 * A Teams conversation id as shipbot's conversation. In a channel, a reply chain is the channel's id
 * with `;messageid=<root>`: the root becomes the thread, so a card posted back lands in the same chain.
 */
export function toConversation(conversationId: string): Conversation {
  const at = conversationId.indexOf(threadMarker);
  if (at === -1) return { platform: "teams", channel: conversationId };
  const thread = conversationId.slice(at + threadMarker.length);
  const channel = conversationId.slice(0, at);
  return thread === "" ? { platform: "teams", channel } : { platform: "teams", channel, thread };
}

/** The inverse of toConversation: the id the connector expects for posts into that chain. */
export function toConversationId(conversation: Conversation): string {
  return conversation.thread === undefined
    ? conversation.channel
    : `${conversation.channel}${threadMarker}${conversation.thread}`;
}

const entities: Record<string, string> = { nbsp: " ", lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" };

/** A numeric reference past the last Unicode code point names no character: it stays as typed. */
function fromCodePoint(code: number, whole: string): string {
  return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
}

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name: string) => {
    if (name.startsWith("#x") || name.startsWith("#X"))
      return fromCodePoint(Number.parseInt(name.slice(2), 16), whole);
    if (name.startsWith("#")) return fromCodePoint(Number.parseInt(name.slice(1), 10), whole);
    return entities[name.toLowerCase()] ?? whole;
  });
}

/**
 * What the person typed, without the bot's own @mention: `<at>shipbot</at> deploy api staging v2` →
 * `deploy api staging v2`. The mention to remove is the one the activity's entities say points at the
 * bot (its text is whatever name the client showed, so it is not guessed from the text); other people's
 * mentions keep their names. Teams may also send light HTML (`<p>`, `&nbsp;`), which is flattened.
 * Empty text means help.
 */
export function fromTeamsText(
  text: string | undefined,
  activityEntities: readonly TeamsEntity[] | undefined,
  botId: string | undefined,
): string {
  let rest = text ?? "";
  for (const entity of activityEntities ?? []) {
    if (entity.type !== "mention" || typeof entity.text !== "string" || entity.text === "") continue;
    if (botId === undefined || entity.mentioned?.id !== botId) continue;
    rest = rest.split(entity.text).join(" ");
  }
  const command = decodeEntities(
    rest
      .replace(/<at>([^<]*)<\/at>/gi, "$1")
      .replace(/<br\s*\/?>|<\/p>|<\/div>/gi, " ")
      .replace(/<[^>]*>/g, ""),
  )
    .replace(/\s+/g, " ")
    .trim();
  return command === "" ? "help" : command;
}

export type CardActionParse =
  | { ok: true; verb: string; value: string }
  | { ok: false; status: 400; reason: string };

/**
 * The value of an `adaptiveCard/action` invoke: `{ action: { type: "Action.Execute", verb, data: { value } } }`.
 * Anything else is a bad request; the verb and value are untrusted and re-checked by the action handler.
 */
export function parseCardAction(value: unknown): CardActionParse {
  const action = (value as { action?: unknown } | undefined)?.action as
    | { type?: unknown; verb?: unknown; data?: unknown }
    | undefined;
  if (typeof action !== "object" || action === null)
    return { ok: false, status: 400, reason: "missing action" };
  if (action.type !== "Action.Execute") return { ok: false, status: 400, reason: "not an Action.Execute" };
  if (typeof action.verb !== "string" || action.verb === "" || action.verb.length > 100) {
    return { ok: false, status: 400, reason: "missing verb" };
  }
  const data = action.data as { value?: unknown } | undefined;
  const v = data?.value;
  if (typeof v !== "string" || v.length > 1000) return { ok: false, status: 400, reason: "missing value" };
  return { ok: true, verb: action.verb, value: v };
}
