import { z } from "zod";
import { envArg, serviceArg } from "../src/core/args.ts";
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
    days: z
      .string()
      .regex(/^[0-9]{1,3}$/, "must be a whole number of days")
      .transform(Number)
      .pipe(z.int().min(1, "must be at least 1").max(365, "must be at most 365"))
      .optional(),
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
