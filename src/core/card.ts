/**
 * A platform-neutral message. Adapters render it as Block Kit, Adaptive Cards or terminal text;
 * core never sees a platform payload.
 */
export type CardTone = "info" | "pending" | "running" | "success" | "failure" | "warning";

export interface CardAction {
  id: string;
  label: string;
  /** Opaque value carried back on click; re-authorized server-side, never trusted. */
  value: string;
  style?: "primary" | "danger";
}

export interface Card {
  tone: CardTone;
  title: string;
  lines: string[];
  fields: Array<{ label: string; value: string }>;
  actions: CardAction[];
  footer?: string;
  /**
   * Group principals the message is addressed to (`slack:S…`): a platform that can notify them does (Slack
   * mentions its user groups); the others show only the lines, which name who is meant in words.
   */
  notify?: string[];
}

export function createCard(tone: CardTone, title: string, lines: string[] = []): Card {
  return { tone, title, lines, fields: [], actions: [] };
}
