import { z } from "zod";
import { dryRunFlag, envArg, serviceArg, wholeNumberArg } from "../src/core/args.ts";
import type { JobSpec } from "../src/core/command-module.ts";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "rollback",
  summary: "Return a service to its previous revision, or to a given one",
  usage: "rollback <service> <env> [revision] [--dry-run]",
  positional: ["service", "env", "revision"],
  flags: ["dry-run"],
  schema: z.object({
    service: serviceArg,
    env: envArg,
    revision: wholeNumberArg(1, 1_000_000).optional(),
    "dry-run": dryRunFlag,
  }),
  permission: "rollback",
  scope: ({ service, env }) => ({ service, env }),
  run: ({ service, env, revision, "dry-run": dryRun }, ctx) => {
    const job: JobSpec = { kind: "rollback", target: ctx.target(service, env) };
    if (revision !== undefined) job.revision = revision;
    return { type: "jobs", dryRun: dryRun === true, jobs: [job] };
  },
});
