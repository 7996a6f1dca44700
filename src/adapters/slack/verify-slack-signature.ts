import { createHmac, timingSafeEqual } from "node:crypto";

/** Slack's replay window: a request dated more than five minutes away from our clock is refused. */
export const signatureToleranceSec = 300;

export interface SlackSignatureInput {
  signingSecret: string;
  /** `X-Slack-Request-Timestamp`: Unix seconds, as sent. */
  timestamp: string | undefined;
  /** `X-Slack-Signature`: `v0=<hex>`. */
  signature: string | undefined;
  /** The raw body, byte for byte as received (before any parsing). */
  body: string | Buffer;
  /** Our clock, in ms since the epoch. Passed in so the check is pure and testable. */
  nowMs: number;
  toleranceSec?: number;
}

export type SlackSignatureResult =
  | { ok: true }
  | { ok: false; reason: "missing_headers" | "bad_timestamp" | "stale" | "future" | "bad_signature" };

const timestampPattern = /^\d{1,12}$/;
const signaturePattern = /^v0=[0-9a-f]{64}$/;

/**
 * Verifies Slack's v0 request signature: HMAC-SHA256 keyed with the signing secret over
 * `v0:<timestamp>:<raw body>`, compared in constant time. Unlike a staleness-only check, a timestamp
 * too far in the future is refused as well: a signed request captured today must not be replayable
 * later just because it was dated ahead.
 */
export function verifySlackSignature(input: SlackSignatureInput): SlackSignatureResult {
  const { timestamp, signature } = input;
  if (timestamp === undefined || signature === undefined || input.signingSecret.length === 0) {
    return { ok: false, reason: "missing_headers" };
  }
  if (!timestampPattern.test(timestamp)) return { ok: false, reason: "bad_timestamp" };
  const tolerance = input.toleranceSec ?? signatureToleranceSec;
  const skew = Number(timestamp) - Math.floor(input.nowMs / 1000);
  if (skew < -tolerance) return { ok: false, reason: "stale" };
  if (skew > tolerance) return { ok: false, reason: "future" };
  // The shape check keeps the compare below at a fixed length, which timingSafeEqual requires.
  if (!signaturePattern.test(signature)) return { ok: false, reason: "bad_signature" };
  const expected = computeSlackSignature(input.signingSecret, timestamp, input.body);
  const same = timingSafeEqual(Buffer.from(expected, "latin1"), Buffer.from(signature, "latin1"));
  return same ? { ok: true } : { ok: false, reason: "bad_signature" };
}

/** `v0=<hex>` for a timestamp and body; also what tests use to sign requests. */
export function computeSlackSignature(
  signingSecret: string,
  timestamp: string,
  body: string | Buffer,
): string {
  const hmac = createHmac("sha256", signingSecret);
  hmac.update(`v0:${timestamp}:`);
  hmac.update(body);
  return `v0=${hmac.digest("hex")}`;
}
