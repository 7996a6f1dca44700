import type { Card, CardAction } from "../../core/card.ts";
import { toSlackGroupId } from "./create-group-resolver.ts";
import { actionIdPrefix } from "./slack-api.ts";

/** Slack's published Block Kit limits (api.slack.com/reference/block-kit). */
export const blockLimits = {
  blocksPerMessage: 50,
  sectionText: 3000,
  fieldsPerSection: 10,
  fieldText: 2000,
  elementsPerActions: 25,
  buttonText: 75,
  buttonValue: 2000,
  actionId: 255,
  contextText: 3000,
} as const;

/**
 * How much of a card's body goes into one message. Far below what Slack accepts: a status card that
 * needs more is unreadable in a channel, so the rest is summarised ("… 12 more lines").
 */
export const bodyCharBudget = 12_000;
/** The notification / accessibility text sent next to the blocks. */
export const fallbackTextLimit = 3000;

export interface MrkdwnText {
  type: "mrkdwn";
  text: string;
}
export interface PlainText {
  type: "plain_text";
  text: string;
  emoji: true;
}
export interface ButtonElement {
  type: "button";
  action_id: string;
  text: PlainText;
  value: string;
  style?: "primary" | "danger";
}
export type SlackBlock =
  | { type: "section"; text: MrkdwnText }
  | { type: "section"; fields: MrkdwnText[] }
  | { type: "actions"; elements: ButtonElement[] }
  | { type: "context"; elements: MrkdwnText[] };

export interface RenderedMessage {
  /** Plain fallback for notifications and screen readers; Slack shows the blocks. */
  text: string;
  blocks: SlackBlock[];
}

/** Slack treats `&`, `<` and `>` as control characters in mrkdwn; escaping also stops `<!channel>` pings. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Cuts to at most `max` UTF-16 units without splitting a surrogate pair, marking the cut with "…". */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max - 1);
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

const mrkdwn = (text: string): MrkdwnText => ({ type: "mrkdwn", text });

function plural(n: number, word: string): string {
  return `${n} more ${word}${n === 1 ? "" : "s"}`;
}

/** Button action ids are unique per message; the part after the prefix names the card action. */
export function toActionId(action: CardAction, taken: Set<string>): string {
  const base = truncate(`${actionIdPrefix}${action.id}`, blockLimits.actionId - 4);
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}#${n}`;
  taken.add(id);
  return id;
}

/** The card action an action id stands for, or undefined when it is not one of ours. */
export function fromActionId(actionId: string): string | undefined {
  if (!actionId.startsWith(actionIdPrefix)) return undefined;
  const rest = actionId.slice(actionIdPrefix.length);
  const hash = rest.indexOf("#");
  const id = hash === -1 ? rest : rest.slice(0, hash);
  return id.length > 0 ? id : undefined;
}

/**
 * A platform-neutral card as Block Kit, always inside Slack's limits: at most 50 blocks, section text
 * ≤ 3000 characters, ≤ 10 fields per section, button values ≤ 2000. Content that does not fit is cut
 * with a summary of what was left out. Pure.
 */
export function renderBlocks(card: Card): RenderedMessage {
  const blocks: SlackBlock[] = [];
  blocks.push({
    type: "section",
    text: mrkdwn(truncate(`*${escapeMrkdwn(card.title)}*`, blockLimits.sectionText)),
  });

  const fields = card.fields.slice(0, blockLimits.fieldsPerSection * 2);
  const fieldBlocks: SlackBlock[] = [];
  for (let i = 0; i < fields.length; i += blockLimits.fieldsPerSection) {
    fieldBlocks.push({
      type: "section",
      fields: fields
        .slice(i, i + blockLimits.fieldsPerSection)
        .map((f) =>
          mrkdwn(truncate(`*${escapeMrkdwn(f.label)}*\n${escapeMrkdwn(f.value)}`, blockLimits.fieldText)),
        ),
    });
  }

  // Buttons whose value would not survive the trip are left out rather than cut: a cut value would
  // name something else.
  const taken = new Set<string>();
  const buttons: ButtonElement[] = card.actions
    .filter((a) => a.value.length <= blockLimits.buttonValue)
    .slice(0, blockLimits.elementsPerActions * 2)
    .map((a) => {
      const button: ButtonElement = {
        type: "button",
        action_id: toActionId(a, taken),
        text: { type: "plain_text", text: truncate(a.label, blockLimits.buttonText), emoji: true },
        value: a.value,
      };
      if (a.style) button.style = a.style;
      return button;
    });
  const actionBlocks: SlackBlock[] = [];
  for (let i = 0; i < buttons.length; i += blockLimits.elementsPerActions) {
    actionBlocks.push({ type: "actions", elements: buttons.slice(i, i + blockLimits.elementsPerActions) });
  }
  const omitted = card.fields.length - fields.length + (card.actions.length - buttons.length);

  const footerBlocks: SlackBlock[] = [];
  const footerParts = [card.footer, omitted > 0 ? `${plural(omitted, "item")} not shown` : undefined];
  const footer = footerParts.filter((p): p is string => p !== undefined).join(" · ");
  if (footer)
    footerBlocks.push({
      type: "context",
      elements: [mrkdwn(truncate(escapeMrkdwn(footer), blockLimits.contextText))],
    });

  const mentions = renderMentions(card);
  const mentionBlocks: SlackBlock[] =
    mentions === "" ? [] : [{ type: "section", text: mrkdwn(truncate(mentions, blockLimits.sectionText)) }];

  // Lines get what is left of the block budget, minus one block for the "more lines" summary.
  const reserved =
    blocks.length + fieldBlocks.length + actionBlocks.length + footerBlocks.length + mentionBlocks.length;
  const lineBlockBudget = Math.max(0, blockLimits.blocksPerMessage - reserved - 1);
  const lineBlocks: SlackBlock[] = [];
  let current = "";
  let inCurrent = 0;
  let used = 0;
  let shown = 0;
  for (const raw of card.lines) {
    const line = truncate(escapeMrkdwn(raw), blockLimits.sectionText);
    if (used + line.length > bodyCharBudget) break;
    const joined = current === "" ? line : `${current}\n${line}`;
    if (joined.length <= blockLimits.sectionText) {
      current = joined;
      inCurrent += 1;
    } else {
      // Closing this section and opening another needs two blocks of the budget.
      if (lineBlocks.length + 2 > lineBlockBudget) break;
      lineBlocks.push({ type: "section", text: mrkdwn(current) });
      current = line;
      inCurrent = 1;
    }
    used += line.length;
    shown += 1;
  }
  if (current !== "") {
    if (lineBlocks.length < lineBlockBudget) lineBlocks.push({ type: "section", text: mrkdwn(current) });
    else shown -= inCurrent;
  }
  const hidden = card.lines.length - shown;
  if (hidden > 0) lineBlocks.push({ type: "context", elements: [mrkdwn(`… ${plural(hidden, "line")}`)] });

  blocks.push(...lineBlocks, ...mentionBlocks, ...fieldBlocks, ...actionBlocks, ...footerBlocks);
  return { text: renderFallbackText(card), blocks };
}

/**
 * The user groups a card is addressed to as Slack mentions (`<!subteam^S…>`), which notify their members;
 * principals that are not Slack user groups are left out (the card's lines name them in words).
 */
export function renderMentions(card: Card): string {
  const ids = (card.notify ?? [])
    .filter((p) => p.startsWith("slack:"))
    .map(toSlackGroupId)
    .filter((id): id is string => id !== undefined);
  return [...new Set(ids)].map((id) => `<!subteam^${id}>`).join(" ");
}

/** Title and body as plain lines, for notifications; cut to a size every client shows. */
export function renderFallbackText(card: Card): string {
  const mentions = renderMentions(card);
  const text = [card.title, ...card.lines].map(escapeMrkdwn).join("\n");
  // Mentions first, so a cut never drops them.
  return truncate(mentions === "" ? text : `${mentions} ${text}`, fallbackTextLimit);
}
