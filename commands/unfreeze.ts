import { z } from "zod";
import { envArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "unfreeze",
  summary: "End an ad hoc freeze; waiting operations go ahead",
  usage: "unfreeze <env>",
  positional: ["env"],
  flags: [],
  schema: z.object({ env: envArg }),
  permission: "freeze",
  scope: ({ env }) => ({ env }),
  run: ({ env }, ctx) => {
    ctx.env(env);
    return { type: "control", control: { kind: "unfreeze", env } };
  },
});
