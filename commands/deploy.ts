import { z } from "zod";
import { dryRunFlag, envArg, serviceArg, versionArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "deploy",
  summary: "Roll out a version (image tag) of a service to an environment",
  usage: "deploy <service> <env> <version> [--dry-run]",
  positional: ["service", "env", "version"],
  flags: ["dry-run"],
  schema: z.object({ service: serviceArg, env: envArg, version: versionArg, "dry-run": dryRunFlag }),
  permission: "deploy",
  scope: ({ service, env }) => ({ service, env }),
  run: ({ service, env, version, "dry-run": dryRun }, ctx) => ({
    type: "jobs",
    dryRun: dryRun === true,
    jobs: [{ kind: "deploy", target: ctx.target(service, env), version }],
  }),
});
