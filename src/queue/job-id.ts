import { hash } from "node:crypto";
import type { HistoryEntry } from "../notify/status-store.ts";

/** The first 64 bits of SHA-256 of `text`, base 36, 12 characters. One-shot hash: no Hash object per id. */
function digest36(text: string): string {
  const hex = hash("sha256", text, "hex");
  return BigInt(`0x${hex.slice(0, 16)}`)
    .toString(36)
    .padStart(13, "0")
    .slice(0, 12);
}

/**
 * Marks a command id that shipbot derived from its own state rather than from one platform's event: no
 * platform's event id starts with it (Slack trigger and event ids, Teams `<conversation id>|<activity id>`,
 * shell UUIDs, `button-…` ids of job cards).
 */
const sharedCommandPrefix = "shared:";

/** Stands in for the platform in the ids of shared commands; not a platform name, so never collides. */
const sharedScope = "shared";

/**
 * A command id that means the same on every platform: the clicks on cards shown in Slack and Teams at
 * once (an alert's Roll back) make one job, wherever they come from. `key` must name the operation alone.
 */
export function toSharedCommandId(key: string): string {
  return `${sharedCommandPrefix}${key}`;
}

/**
 * Event ids are unique only within their platform, so the platform is part of an event's job id: two
 * platforms' events can never meet on one job. A shared command's id is the same everywhere on purpose.
 */
function scopeOf(platform: string, commandId: string): string {
  return commandId.startsWith(sharedCommandPrefix) ? sharedScope : platform;
}

/**
 * Job ids derive from the platform's event id, so a redelivered command maps to the job it already
 * made. Short and typeable for `cancel`; never all digits and without ':' as BullMQ requires.
 */
export function createJobId(platform: string, commandId: string, index: number): string {
  return `j${digest36(`${scopeOf(platform, commandId)}\u0000${commandId}\u0000${index}`)}`;
}

/**
 * The batch of a fan-out command, from the same platform event id: a redelivery finds the same batch and
 * its card. Starts with "b", the prefix of batch cards (job cards are "j", alert groups "a").
 */
export function createBatchId(platform: string, commandId: string): string {
  return `b${digest36(`${scopeOf(platform, commandId)}\u0000${commandId}\u0000batch`)}`;
}

/**
 * The command id of rolling back one deploy, the same on every platform: the deploy's card, its copies in
 * Slack and Teams and the alert cards that point at it make one rollback between them, where a second
 * would undo the first. A rollback of that deploy that failed may be tried again: each failure since the
 * deploy in the target's `history` starts a new attempt, and clicks within one attempt are one rollback.
 */
export function toRollbackCommandId(
  service: string,
  env: string,
  deployJobId: string,
  history: ReadonlyArray<Pick<HistoryEntry, "jobId" | "kind" | "phase" | "at">>,
): string {
  const since = history.find((h) => h.jobId === deployJobId)?.at ?? 0;
  const failed = history.filter((h) => h.kind === "rollback" && h.phase === "failed" && h.at > since).length;
  return toSharedCommandId(
    `alert-rollback-${service}-${env}-${deployJobId}${failed > 0 ? `-${failed}` : ""}`,
  );
}
