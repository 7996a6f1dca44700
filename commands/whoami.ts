import { z } from "zod";
import { createCard } from "../src/core/card.ts";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "whoami",
  summary: "Show who shipbot thinks you are and what you may do",
  usage: "whoami",
  positional: [],
  flags: [],
  schema: z.object({}),
  permission: null,
  scope: () => ({}),
  run: (_args, ctx) => {
    const card = createCard("info", `You are ${ctx.user.name} (${ctx.user.id})`);
    if (ctx.user.groups.length > 0) card.lines.push(`Groups: ${ctx.user.groups.join(", ")}`);
    if (ctx.roles.length === 0) card.lines.push("You hold no role: you can use `help` and `whoami` only.");
    for (const name of ctx.roles) {
      const role = ctx.config.roles[name];
      if (!role) continue;
      const services = role.services.includes("*") ? "all services" : role.services.join(", ");
      const envs = role.environments.includes("*") ? "every environment" : role.environments.join(", ");
      card.lines.push(`Role \`${name}\`: ${role.permissions.join(", ")} on ${services} in ${envs}`);
    }
    return { type: "reply", card };
  },
});
