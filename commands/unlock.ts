import { z } from "zod";
import { envArg, serviceArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "unlock",
  summary: "Release a lock; waiting operations go ahead",
  usage: "unlock <service|*> <env>",
  positional: ["service", "env"],
  flags: [],
  schema: z.object({ service: z.union([z.literal("*"), serviceArg]), env: envArg }),
  permission: "lock",
  scope: ({ service, env }) => ({ service, env }),
  run: ({ service, env }, ctx) => {
    if (service !== "*") ctx.target(service, env);
    else ctx.env(env);
    return { type: "control", control: { kind: "unlock", service, env } };
  },
});
