import { hash } from "node:crypto";

/** The first 64 bits of SHA-256 of `text`, base 36, 12 characters. One-shot hash: no Hash object per id. */
function digest36(text: string): string {
  const hex = hash("sha256", text, "hex");
  return BigInt(`0x${hex.slice(0, 16)}`)
    .toString(36)
    .padStart(13, "0")
    .slice(0, 12);
}

/**
 * Job ids derive from the platform's event id, so a redelivered command maps to the job it already
 * made. Short and typeable for `cancel`; never all digits and without ':' as BullMQ requires.
 */
export function createJobId(platform: string, commandId: string, index: number): string {
  return `j${digest36(`${platform}\u0000${commandId}\u0000${index}`)}`;
}

/**
 * The batch of a fan-out command, from the same platform event id: a redelivery finds the same batch and
 * its card. Starts with "b", the prefix of batch cards (job cards are "j", alert groups "a").
 */
export function createBatchId(platform: string, commandId: string): string {
  return `b${digest36(`${platform}\u0000${commandId}\u0000batch`)}`;
}
