import { z } from "zod";
import { envArg, serviceArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "history",
  summary: "List the last operations on a service in an environment",
  usage: "history <service> <env>",
  positional: ["service", "env"],
  flags: [],
  schema: z.object({ service: serviceArg, env: envArg }),
  permission: "read",
  scope: ({ service, env }) => ({ service, env }),
  run: ({ service, env }, ctx) => {
    ctx.target(service, env);
    return { type: "query", query: { kind: "history", service, env } };
  },
});
