import { z } from "zod";
import { dryRunFlag, envArg, serviceListArg, versionArg } from "../src/core/args.ts";
import { defineCommand, type JobSpec } from "../src/core/command-module.ts";
import { ShipbotError } from "../src/core/errors.ts";
import { expandTargets, toScopes } from "../src/core/fan-out.ts";

export default defineCommand({
  name: "deploy",
  summary: "Roll out a version (image tag) of one or more services to an environment",
  usage: "deploy <service>[,<service>…|*] <env> <version> [--dry-run] [--force]",
  positional: ["service", "env", "version"],
  flags: ["dry-run", "force"],
  schema: z.object({
    service: serviceListArg,
    env: envArg,
    version: versionArg,
    "dry-run": dryRunFlag,
    force: dryRunFlag,
  }),
  permission: "deploy",
  scope: ({ service, env }) => toScopes(service, env),
  run: ({ service, env, version, "dry-run": dryRun, force }, ctx) => {
    const targets = expandTargets(service, env, "deploy", ctx);
    if (force === true) {
      // Past red checks only where the environment's approval policy says so; the request then needs it.
      const policy = ctx.config.environments[env]?.approval;
      if (!policy?.allowForce || policy.required === 0) {
        throw new ShipbotError(
          "usage",
          `--force is not allowed in ${env}: its approval policy does not permit deploying past failing checks`,
        );
      }
    }
    const jobs = targets.map(
      (target): JobSpec =>
        force === true
          ? { kind: "deploy", target, version, force: true }
          : { kind: "deploy", target, version },
    );
    return { type: "jobs", dryRun: dryRun === true, jobs };
  },
});
