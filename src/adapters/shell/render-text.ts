import type { Card } from "../../core/card.ts";

const toneColors: Record<Card["tone"], string> = {
  info: "36",
  pending: "33",
  running: "34",
  success: "32",
  failure: "31",
  warning: "33",
};

/** Terminal text for a card; colour only when writing to a terminal. */
export function renderCardText(card: Card, color = false): string {
  const paint = (code: string, text: string): string => (color ? `\u001b[${code}m${text}\u001b[0m` : text);
  const out = [paint(`1;${toneColors[card.tone]}`, card.title)];
  for (const line of card.lines) out.push(`  ${line}`);
  for (const field of card.fields) out.push(`  ${paint("2", `${field.label}:`)} ${field.value}`);
  if (card.actions.length > 0) out.push(`  ${card.actions.map((a) => `[${a.label}]`).join(" ")}`);
  if (card.footer) out.push(`  ${paint("2", card.footer)}`);
  return out.join("\n");
}
