import type { Writable } from "node:stream";
import type { Card } from "../../core/card.ts";
import type { ChatPort } from "../../notify/chat-port.ts";
import { renderCardText } from "./render-text.ts";

export interface ShellChat extends ChatPort {
  /** The last version of every card, by reference. */
  cards(): Map<string, Card>;
}

/**
 * The terminal as a chat platform. A new card prints in full; an edit prints one status line, and the
 * whole card again once it reaches a final state. A reply in a card's thread prints as one line.
 */
export function createShellChat(out: Writable, color: boolean): ShellChat {
  const cards = new Map<string, Card>();
  let next = 1;
  const final = new Set<Card["tone"]>(["success", "failure", "warning"]);
  return {
    async post(conversation, card) {
      const ref = `card-${next++}`;
      cards.set(ref, card);
      // A reply in a card's thread (a reminder): one line under the cards, as a terminal has no threads.
      if (conversation.thread !== undefined) out.write(`  ↳ ${[card.title, ...card.lines].join(" · ")}\n`);
      else out.write(`${renderCardText(card, color)}\n`);
      return ref;
    },
    async update(_conversation, ref, card) {
      cards.set(ref, card);
      if (final.has(card.tone)) out.write(`${renderCardText(card, color)}\n`);
      else
        out.write(
          `  ${card.lines[0] ?? card.title}  ${color ? "\u001b[2m" : ""}(${card.footer?.split(" · ")[0] ?? ref})${color ? "\u001b[0m" : ""}\n`,
        );
    },
    cards: () => cards,
  };
}
