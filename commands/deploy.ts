import { z } from "zod";
import { dryRunFlag, envArg, serviceListArg, versionArg } from "../src/core/args.ts";
import { defineCommand, type JobSpec } from "../src/core/command-module.ts";
import { ShipbotError } from "../src/core/errors.ts";
import { expandTargets, toScopes } from "../src/core/fan-out.ts";

const usage =
  'deploy <service>[,<service>…|*] <env> <version> [--dry-run] [--force] [--break-glass "reason"]';

export default defineCommand({
  name: "deploy",
  summary: "Roll out a version (image tag) of one or more services to an environment",
  usage,
  // The reason of `--break-glass "db fix"` arrives as a word after the version.
  positional: ["service", "env", "version", "words"],
  rest: true,
  flags: ["dry-run", "force", "break-glass"],
  schema: z.object({
    service: serviceListArg,
    env: envArg,
    version: versionArg,
    words: z.string().max(300).optional(),
    "dry-run": dryRunFlag,
    force: dryRunFlag,
    "break-glass": z.union([z.literal(true), z.string().max(300)]).optional(),
  }),
  permission: "deploy",
  scope: ({ service, env }) => toScopes(service, env),
  run: ({ service, env, version, words, "dry-run": dryRun, force, "break-glass": breakGlass }, ctx) => {
    const hint = { hint: `usage: ${usage}` };
    if (breakGlass === undefined && words !== undefined)
      throw new ShipbotError(
        "usage",
        `too many arguments: \`${words.length > 40 ? `${words.slice(0, 40)}…` : words}\``,
        hint,
      );
    const { targets, skipped } = expandTargets(service, env, "deploy", ctx);
    const left = skipped.length ? { skipped } : {};
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
      const jobs = targets.map(
        (target): JobSpec => ({ kind: "deploy", target, version, breakGlass: { reason } }),
      );
      return { type: "jobs", dryRun: dryRun === true, jobs, ...left };
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
    }
    const jobs = targets.map(
      (target): JobSpec =>
        force === true
          ? { kind: "deploy", target, version, force: true }
          : { kind: "deploy", target, version },
    );
    return { type: "jobs", dryRun: dryRun === true, jobs, ...left };
  },
});
