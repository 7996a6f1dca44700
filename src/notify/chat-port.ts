import type { Card } from "../core/card.ts";
import type { Conversation } from "../core/model.ts";

/** What the notifier needs from a chat platform: post a card, then edit it in place. */
export interface ChatPort {
  /** Posts a new message and returns a reference that `update` accepts (Slack ts, Teams activity id…). */
  post(conversation: Conversation, card: Card): Promise<string>;
  update(conversation: Conversation, ref: string, card: Card): Promise<void>;
}

export type ChatPorts = Partial<Record<Conversation["platform"], ChatPort>>;
