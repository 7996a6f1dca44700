import { z } from "zod";
import { envArg, serviceArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "status",
  summary: "Show what runs now and the last deploys of a service",
  usage: "status <service> [env]",
  positional: ["service", "env"],
  flags: [],
  schema: z.object({ service: serviceArg, env: envArg.optional() }),
  permission: "read",
  scope: ({ service, env }) => (env === undefined ? { service } : { service, env }),
  run: ({ service, env }, ctx) => {
    if (env !== undefined) ctx.target(service, env);
    return {
      type: "query",
      query: env === undefined ? { kind: "status", service } : { kind: "status", service, env },
    };
  },
});
