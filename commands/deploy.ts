import { z } from "zod";
import { dryRunFlag, envArg, serviceArg, versionArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";
import { ShipbotError } from "../src/core/errors.ts";

const usage = '[--dry-run] [--force] [--break-glass "reason"]';

export default defineCommand({
  name: "deploy",
  summary: "Roll out a version (image tag) of a service to an environment",
  usage: `deploy <service> <env> <version> ${usage}`,
  // The reason of `--break-glass "db fix"` arrives as a word after the version.
  positional: ["service", "env", "version", "words"],
  rest: true,
  flags: ["dry-run", "force", "break-glass"],
  schema: z.object({
    service: serviceArg,
    env: envArg,
    version: versionArg,
    words: z.string().max(300).optional(),
    "dry-run": dryRunFlag,
    force: dryRunFlag,
    "break-glass": z.union([z.literal(true), z.string().max(300)]).optional(),
  }),
  permission: "deploy",
  scope: ({ service, env }) => ({ service, env }),
  run: ({ service, env, version, words, "dry-run": dryRun, force, "break-glass": breakGlass }, ctx) => {
    const hint = { hint: `usage: deploy <service> <env> <version> ${usage}` };
    if (breakGlass === undefined && words !== undefined)
      throw new ShipbotError(
        "usage",
        `too many arguments: \`${words.length > 40 ? `${words.slice(0, 40)}…` : words}\``,
        hint,
      );
    const target = ctx.target(service, env);
    if (breakGlass !== undefined) {
      const reason = `${breakGlass === true ? "" : breakGlass} ${words ?? ""}`.trim();
      if (!reason)
        throw new ShipbotError(
          "usage",
          '--break-glass needs a reason: --break-glass "why this cannot wait"',
          hint,
        );
      if (!ctx.config.environments[env]?.breakGlass)
        throw new ShipbotError(
          "usage",
          `break-glass is not configured for ${env}: deploys wait for its freeze to end (rollbacks still run)`,
          { hint: `an administrator can add environments.${env}.breakGlass to the configuration` },
        );
      if (force === true)
        throw new ShipbotError("usage", "--break-glass and --force cannot be combined", hint);
      return {
        type: "jobs",
        dryRun: dryRun === true,
        jobs: [{ kind: "deploy", target, version, breakGlass: { reason } }],
      };
    }
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
