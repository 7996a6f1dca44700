import { z } from "zod";
import { dryRunFlag, envArg, serviceArg, wholeNumberArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";
import { ShipbotError } from "../src/core/errors.ts";

export default defineCommand({
  name: "scale",
  summary: "Set the number of replicas of a service, within its configured bounds",
  usage: "scale <service> <env> <replicas> [--dry-run]",
  positional: ["service", "env", "replicas"],
  flags: ["dry-run"],
  schema: z.object({
    service: serviceArg,
    env: envArg,
    replicas: wholeNumberArg(0, 1000),
    "dry-run": dryRunFlag,
  }),
  permission: "scale",
  scope: ({ service, env }) => ({ service, env }),
  run: ({ service, env, replicas, "dry-run": dryRun }, ctx) => {
    const target = ctx.target(service, env);
    const { min, max } = target.replicas;
    if (replicas < min || replicas > max) {
      throw new ShipbotError(
        "usage",
        `${service} in ${env} may run between ${min} and ${max} replicas, not ${replicas}`,
        {
          hint: "usage: scale <service> <env> <replicas> [--dry-run]",
        },
      );
    }
    return { type: "jobs", dryRun: dryRun === true, jobs: [{ kind: "scale", target, replicas }] };
  },
});
