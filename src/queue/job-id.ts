import { createHash } from "node:crypto";

/**
 * Job ids derive from the platform's event id, so a redelivered command maps to the job it already
 * made. Short and typeable for `cancel`; never all digits and without ':' as BullMQ requires.
 */
export function createJobId(platform: string, commandId: string, index: number): string {
  const digest = createHash("sha256").update(`${platform}\u0000${commandId}\u0000${index}`).digest();
  return `j${digest.readBigUInt64BE(0).toString(36).padStart(13, "0").slice(0, 12)}`;
}

/**
 * The batch of a fan-out command, from the same platform event id: a redelivery finds the same batch and
 * its card. Starts with "b", the prefix of batch cards (job cards are "j", alert groups "a").
 */
export function createBatchId(platform: string, commandId: string): string {
  const digest = createHash("sha256").update(`${platform}\u0000${commandId}\u0000batch`).digest();
  return `b${digest.readBigUInt64BE(0).toString(36).padStart(13, "0").slice(0, 12)}`;
}
