import { z } from "zod";
import { dryRunFlag, envArg, serviceListArg, wholeNumberArg } from "../src/core/args.ts";
import type { JobSpec } from "../src/core/command-module.ts";
import { defineCommand } from "../src/core/command-module.ts";
import { ShipbotError } from "../src/core/errors.ts";
import { expandTargets, toScopes } from "../src/core/fan-out.ts";

export default defineCommand({
  name: "rollback",
  summary: "Return one or more services to their previous revision, or one service to a given one",
  usage: "rollback <service>[,<service>…|*] <env> [revision] [--dry-run]",
  positional: ["service", "env", "revision"],
  flags: ["dry-run"],
  schema: z.object({
    service: serviceListArg,
    env: envArg,
    revision: wholeNumberArg(1, 1_000_000).optional(),
    "dry-run": dryRunFlag,
  }),
  permission: "rollback",
  scope: ({ service, env }) => toScopes(service, env),
  run: ({ service, env, revision, "dry-run": dryRun }, ctx) => {
    // Revision numbers belong to one Deployment: they mean nothing across several services.
    if (revision !== undefined && (service === "*" || service.length > 1))
      throw new ShipbotError(
        "usage",
        "a revision applies to one service; roll several back to their previous revisions",
        {
          hint: "usage: rollback <service>[,<service>…|*] <env> [revision] [--dry-run]",
        },
      );
    const { targets, skipped } = expandTargets(service, env, "rollback", ctx);
    const jobs = targets.map((target): JobSpec => {
      const job: JobSpec = { kind: "rollback", target };
      if (revision !== undefined) job.revision = revision;
      return job;
    });
    return { type: "jobs", dryRun: dryRun === true, jobs, ...(skipped.length ? { skipped } : {}) };
  },
});
