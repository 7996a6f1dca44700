import type { Card, CardTone } from "../../core/card.ts";

/**
 * Limits that keep a card deliverable in Teams. Teams refuses a message over about 28 KB (card and
 * activity envelope together), so the card itself gets a smaller budget; Teams shows at most six
 * buttons side by side before folding the rest into a menu.
 */
export const adaptiveCardLimits = {
  cardBytes: 24 * 1024,
  titleChars: 500,
  lineChars: 2000,
  fieldChars: 1000,
  actions: 6,
  actionTitleChars: 80,
  actionValueChars: 1000,
} as const;

export const adaptiveCardContentType = "application/vnd.microsoft.card.adaptive";

export interface TextRun {
  type: "TextRun";
  text: string;
  weight?: "Bolder";
  size?: "Small" | "Medium";
  color?: "Good" | "Attention" | "Warning" | "Accent";
  isSubtle?: true;
}
export interface RichTextBlock {
  type: "RichTextBlock";
  inlines: TextRun[];
  spacing?: "None" | "Small";
  separator?: true;
}
export interface ExecuteAction {
  type: "Action.Execute";
  title: string;
  verb: string;
  data: { value: string };
  style?: "positive" | "destructive";
}
export interface AdaptiveCard {
  type: "AdaptiveCard";
  $schema: "http://adaptivecards.io/schemas/adaptive-card.json";
  /** 1.4 brings Action.Execute (universal actions); Teams renders up to 1.5. */
  version: "1.5";
  body: RichTextBlock[];
  actions?: ExecuteAction[];
  msteams: { width: "Full" };
}

const colors: Partial<Record<CardTone, TextRun["color"]>> = {
  success: "Good",
  failure: "Attention",
  warning: "Warning",
  running: "Accent",
};

/** Cuts to at most `max` UTF-16 units without splitting a surrogate pair, marking the cut with "…". */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max - 1);
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

function plural(n: number, word: string): string {
  return `${n} more ${word}${n === 1 ? "" : "s"}`;
}

const byteSize = (value: unknown): number => Buffer.byteLength(JSON.stringify(value));

/**
 * A platform-neutral card as an Adaptive Card, always within Teams' size limit. All text goes into
 * TextRuns, which Teams shows as typed: unlike TextBlock they are not markdown, so nothing from a
 * command can forge a link or formatting. Buttons are universal actions (Action.Execute): the verb is
 * the card action's id and the data carries its value; a click arrives as an `adaptiveCard/action`
 * invoke. Lines that do not fit are summarised ("… 12 more lines"). Pure.
 */
export function renderAdaptiveCard(card: Card): AdaptiveCard {
  const color = colors[card.tone];
  const title: TextRun = {
    type: "TextRun",
    text: truncate(card.title, adaptiveCardLimits.titleChars),
    weight: "Bolder",
    size: "Medium",
  };
  if (color) title.color = color;
  const head: RichTextBlock = { type: "RichTextBlock", inlines: [title] };

  const fieldBlocks: RichTextBlock[] = card.fields.map((f) => ({
    type: "RichTextBlock",
    spacing: "None",
    inlines: [
      { type: "TextRun", text: `${truncate(f.label, 100)}: `, weight: "Bolder" },
      { type: "TextRun", text: truncate(f.value, adaptiveCardLimits.fieldChars) },
    ],
  }));

  // A cut value would name something else, so a button whose value is too long is left out.
  const usable = card.actions.filter((a) => a.value.length <= adaptiveCardLimits.actionValueChars);
  const actions: ExecuteAction[] = usable.slice(0, adaptiveCardLimits.actions).map((a) => {
    const action: ExecuteAction = {
      type: "Action.Execute",
      title: truncate(a.label, adaptiveCardLimits.actionTitleChars),
      verb: a.id,
      data: { value: a.value },
    };
    if (a.style === "danger") action.style = "destructive";
    else if (a.style === "primary") action.style = "positive";
    return action;
  });
  const omittedActions = card.actions.length - actions.length;

  const footerText = [
    card.footer,
    omittedActions > 0 ? `${plural(omittedActions, "action")} not shown` : undefined,
  ]
    .filter((p): p is string => p !== undefined && p !== "")
    .join(" · ");
  const footer: RichTextBlock[] = footerText
    ? [
        {
          type: "RichTextBlock",
          separator: true,
          inlines: [{ type: "TextRun", text: truncate(footerText, 1000), size: "Small", isSubtle: true }],
        },
      ]
    : [];

  const assemble = (lines: RichTextBlock[]): AdaptiveCard => {
    const rendered: AdaptiveCard = {
      type: "AdaptiveCard",
      $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
      version: "1.5",
      body: [head, ...lines, ...fieldBlocks, ...footer],
      msteams: { width: "Full" },
    };
    if (actions.length > 0) rendered.actions = actions;
    return rendered;
  };

  const lineBlock = (text: string): RichTextBlock => ({
    type: "RichTextBlock",
    spacing: "Small",
    inlines: [{ type: "TextRun", text: truncate(text, adaptiveCardLimits.lineChars) }],
  });
  const summary = (hidden: number): RichTextBlock => ({
    type: "RichTextBlock",
    spacing: "Small",
    inlines: [{ type: "TextRun", text: `… ${plural(hidden, "line")}`, isSubtle: true }],
  });

  // Lines get what is left of the byte budget, with room kept for the summary of what was cut.
  const lines = card.lines.map(lineBlock);
  const whole = assemble(lines);
  if (byteSize(whole) <= adaptiveCardLimits.cardBytes) return whole;
  let budget = adaptiveCardLimits.cardBytes - byteSize(assemble([summary(card.lines.length)]));
  const kept: RichTextBlock[] = [];
  for (const block of lines) {
    const size = byteSize(block) + 1;
    if (size > budget) break;
    kept.push(block);
    budget -= size;
  }
  const hidden = card.lines.length - kept.length;
  const cut = assemble([...kept, summary(hidden)]);
  // Title, fields and footer are each bounded, but many fields could still overflow: drop them last.
  if (byteSize(cut) <= adaptiveCardLimits.cardBytes) return cut;
  fieldBlocks.splice(0, fieldBlocks.length, summaryOfFields(card.fields.length));
  return assemble([...kept, summary(hidden)]);
}

function summaryOfFields(count: number): RichTextBlock {
  return {
    type: "RichTextBlock",
    spacing: "Small",
    inlines: [{ type: "TextRun", text: `${count} fields not shown`, isSubtle: true }],
  };
}

/** Title and lines as plain text: the notification preview and the text of an invoke answer. */
export function renderPlainText(card: Card, max = 1000): string {
  return truncate([card.title, ...card.lines].join("\n"), max);
}
