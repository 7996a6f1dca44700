import { z } from "zod";
import { defineCommand } from "../src/core/command-module.ts";

export default defineCommand({
  name: "cancel",
  summary: "Cancel a job that has not started yet",
  usage: "cancel <job>",
  positional: ["job"],
  flags: [],
  schema: z.object({
    job: z.string().regex(/^j[0-9a-z]{6,20}$/, "must be a job id as shown on its card, e.g. j4k2x9q1m"),
  }),
  permission: "cancel",
  // The job's own service and environment are checked again once it is found.
  scope: () => ({}),
  run: ({ job }) => ({ type: "cancel", jobId: job }),
});
