import { z } from "zod";
import { dryRunFlag, envArg, serviceArg, versionArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";
import { ShipbotError } from "../src/core/errors.ts";

export default defineCommand({
  name: "deploy",
  summary: "Roll out a version (image tag) of a service to an environment",
  usage: "deploy <service> <env> <version> [--dry-run] [--force]",
  positional: ["service", "env", "version"],
  flags: ["dry-run", "force"],
  schema: z.object({
    service: serviceArg,
    env: envArg,
    version: versionArg,
    "dry-run": dryRunFlag,
    force: dryRunFlag,
  }),
  permission: "deploy",
  scope: ({ service, env }) => ({ service, env }),
  run: ({ service, env, version, "dry-run": dryRun, force }, ctx) => {
    const target = ctx.target(service, env);
    if (force === true) {
      // Past red checks only where the environment's approval policy says so; the request then needs it.
      const policy = ctx.config.environments[env]?.approval;
      if (!policy?.allowForce || policy.required === 0) {
        throw new ShipbotError(
          "usage",
          `--force is not allowed in ${env}: its approval policy does not permit deploying past failing checks`,
        );
      }
      return {
        type: "jobs",
        dryRun: dryRun === true,
        jobs: [{ kind: "deploy", target, version, force: true }],
      };
    }
    return { type: "jobs", dryRun: dryRun === true, jobs: [{ kind: "deploy", target, version }] };
  },
});
