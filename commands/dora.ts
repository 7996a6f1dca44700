import { z } from "zod";
import { envArg, serviceArg, wholeNumberArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "dora",
  summary: "Deployment frequency, change failure rate and time to restore, from the audit ledger",
  usage: "dora <service> [env] [--days=N]",
  positional: ["service", "env"],
  flags: ["days"],
  schema: z.object({
    service: serviceArg,
    env: envArg.optional(),
    days: wholeNumberArg(1, 365).optional(),
  }),
  permission: "read",
  scope: ({ service, env }) => (env === undefined ? { service } : { service, env }),
  run: ({ service, env, days }, ctx) => {
    if (env !== undefined) ctx.target(service, env);
    return {
      type: "query",
      query: { kind: "dora", service, ...(env === undefined ? {} : { env }), days: days ?? 30 },
    };
  },
});
