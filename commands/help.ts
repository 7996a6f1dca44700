import { z } from "zod";
import { createCard } from "../src/core/card.ts";
import { defineCommand } from "../src/core/command-module.ts";
import { ShipbotError } from "../src/core/errors.ts";
import { describeUnknown } from "../src/core/suggest.ts";

export default defineCommand({
  name: "help",
  summary: "List commands, or explain one",
  usage: "help [command]",
  positional: ["command"],
  flags: [],
  schema: z.object({ command: z.string().max(40).optional() }),
  permission: null,
  scope: () => ({}),
  run: ({ command }, ctx) => {
    if (command !== undefined) {
      const name = command.replace(/^\//, "").toLowerCase();
      const found = ctx.commands.find((c) => c.name === name);
      if (!found) {
        throw new ShipbotError(
          "usage",
          describeUnknown(
            "command",
            name,
            ctx.commands.map((c) => c.name),
          ),
        );
      }
      return { type: "reply", card: createCard("info", found.usage, [found.summary]) };
    }
    const card = createCard(
      "info",
      "shipbot commands",
      ctx.commands.map((c) => `\`${c.usage}\` — ${c.summary}`),
    );
    card.footer = "Mutating commands accept --dry-run to preview without changing anything.";
    return { type: "reply", card };
  },
});
