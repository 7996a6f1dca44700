import { z } from "zod";
import { envArg, serviceArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";

export const reasonArg = z.string().min(1).max(200, "must be at most 200 characters").optional();

export default defineCommand({
  name: "lock",
  summary: "Hold a service (or * for all) in an environment: others' operations wait until unlock",
  usage: "lock <service|*> <env> [reason]",
  positional: ["service", "env", "reason"],
  rest: true,
  flags: [],
  schema: z.object({ service: z.union([z.literal("*"), serviceArg]), env: envArg, reason: reasonArg }),
  permission: "lock",
  scope: ({ service, env }) => ({ service, env }),
  run: ({ service, env, reason }, ctx) => {
    if (service !== "*") ctx.target(service, env);
    else ctx.env(env);
    return { type: "control", control: { kind: "lock", service, env, ...(reason ? { reason } : {}) } };
  },
});
