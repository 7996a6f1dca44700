import { z } from "zod";
import { envArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "queue",
  summary: "List running and waiting jobs",
  usage: "queue [env]",
  positional: ["env"],
  flags: [],
  schema: z.object({ env: envArg.optional() }),
  permission: "read",
  scope: ({ env }) => (env === undefined ? {} : { env }),
  run: ({ env }) => ({
    type: "query",
    query: env === undefined ? { kind: "queue" } : { kind: "queue", env },
  }),
});
