import { z } from "zod";
import { imageTagSchema, kubeLabelName, shortName } from "./names.ts";

/** Who typed something, in platform-neutral terms. `id` is immutable (`slack:U…`, `teams:<aad id>`, `shell:demo`). */
export interface ChatUser {
  id: string;
  name: string;
  email?: string;
  /** Group principals the user belongs to (`slack:S…` user groups, Teams groups). */
  groups: string[];
}

/** Where a reply goes. Stored in jobs so any process can post to it later. */
/** A Slack response_url as the job payload keeps it (longer or odder ones are not carried). */
export const responseUrlSchema = z
  .string()
  .max(512)
  .regex(/^https?:\/\/[^\s]+$/);

export const conversationSchema = z.strictObject({
  platform: z.enum(["slack", "teams", "shell"]),
  /** Slack channel id, Teams conversation id, or a shell session name. */
  channel: z.string().min(1).max(256),
  /** Slack thread ts, Teams reply-chain id. */
  thread: z.string().min(1).max(256).optional(),
  /**
   * Slack only (slash commands, and clicks on a card shown privately): the request's `response_url`, where
   * the person can be shown the job's card privately when the bot cannot post in the channel, and when Slack
   * stops taking it (ms since epoch). A capability: never logged, shown or audited.
   */
  responseUrl: z
    .strictObject({
      url: responseUrlSchema,
      expiresAt: z.int(),
    })
    .optional(),
});
export type Conversation = z.infer<typeof conversationSchema>;

/** A message from any chat platform, normalised by its adapter. */
export interface ChatCommand {
  /** The platform's own event or trigger id: a redelivery carries the same id and must not make a second job. */
  id: string;
  user: ChatUser;
  conversation: Conversation;
  /** What the person typed, e.g. `/deploy api staging v2` or `deploy api staging v2`. */
  text: string;
  receivedAt: number;
}

export const jobKinds = ["deploy", "rollback", "scale"] as const;
export type JobKind = (typeof jobKinds)[number];

/** BullMQ priority: lower runs first. Rollbacks jump ahead of deploys, deploys ahead of scaling. */
export const jobPriority: Record<JobKind, number> = { rollback: 1, deploy: 2, scale: 3 };

/**
 * The job payload as stored in Redis. Kept small (references, no blobs) and free of secrets: BullMQ
 * stores job data in clear text. The worker parses it again: it crossed a process boundary.
 */
export const jobDataSchema = z.strictObject({
  kind: z.enum(jobKinds),
  service: shortName,
  env: shortName,
  /** deploy: the image tag, or with GitHub configured a branch, tag or commit. */
  version: imageTagSchema.optional(),
  /** deploy: the commit the version resolved to when it was approved; the worker deploys exactly that. */
  sha: z
    .string()
    .regex(/^[0-9a-f]{40}$/)
    .optional(),
  /** deploy: go ahead although required checks are not green (only where policy allows; always approved). */
  force: z.literal(true).optional(),
  /**
   * deploy: asked for with `--break-glass <reason>` to run during a freeze. The acquire script lets it
   * past the freeze only once it was approved under the environment's break-glass policy.
   */
  breakGlass: z.strictObject({ reason: z.string().min(1).max(300) }).optional(),
  /** rollback: the revision to return to (omitted: the previous one). */
  revision: z.int().min(1).max(1_000_000).optional(),
  /** scale: the replica count. */
  replicas: z.int().min(0).max(1000).optional(),
  requestedBy: z.strictObject({ id: z.string().max(200), name: z.string().max(200) }),
  conversation: conversationSchema,
  commandId: z.string().max(300),
  requestedAt: z.int(),
  /** Correlation id carried from the chat event to every log line and card. */
  traceId: z.string().max(64),
  /** A job of a fan-out (`deploy api,web staging v2`): its changes count toward the batch's one card. */
  batch: z
    .string()
    .regex(/^b[0-9a-z]{1,40}$/)
    .optional(),
});
export type JobData = z.infer<typeof jobDataSchema>;

export const jobPhases = [
  "pending-approval",
  "approved",
  "queued",
  "waiting",
  "running",
  "progress",
  "succeeded",
  "failed",
  "cancelled",
  "superseded",
] as const;
export type JobPhase = (typeof jobPhases)[number];
export const terminalPhases: ReadonlySet<JobPhase> = new Set([
  "succeeded",
  "failed",
  "cancelled",
  "superseded",
]);

/** The latest known state of a job, as the status store keeps it and cards show it. */
export interface JobState {
  jobId: string;
  seq: number;
  phase: JobPhase;
  /** One line for the card. */
  text: string;
  data: JobData;
  /** Rollout counts while running. */
  progress?: { updated: number; available: number; desired: number };
  /** Position in the target's line while waiting (1 = next). */
  position?: number;
  /** Image before and after, once known. */
  fromImage?: string;
  toImage?: string;
  startedAt?: number;
  finishedAt?: number;
  /** Names of the people who approved, once any did. */
  approvedBy?: string;
  updatedAt: number;
}

export { kubeLabelName };
