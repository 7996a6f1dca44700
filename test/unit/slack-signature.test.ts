import { describe, expect, it } from "vitest";
import {
  computeSlackSignature,
  verifySlackSignature,
} from "../../src/adapters/slack/verify-slack-signature.ts";

// Slack's published example ("Verifying requests from Slack").
const secret = "8f742231b10e8888abcd99yyyzzz85a5";
const timestamp = "1531420618";
const body =
  "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
const at = (seconds: number) => seconds * 1000;

function check(overrides: Partial<Parameters<typeof verifySlackSignature>[0]> = {}) {
  return verifySlackSignature({
    signingSecret: secret,
    timestamp,
    signature: expected,
    body,
    nowMs: at(Number(timestamp)),
    ...overrides,
  });
}

describe("verifySlackSignature", () => {
  it("computes Slack's published signature", () => {
    expect(computeSlackSignature(secret, timestamp, body)).toBe(expected);
    expect(computeSlackSignature(secret, timestamp, Buffer.from(body))).toBe(expected);
  });

  it("accepts Slack's published example with the clock at its timestamp", () => {
    expect(check()).toEqual({ ok: true });
  });

  it("refuses the example with one character of the body changed", () => {
    expect(check({ body: body.replace("roadrunner", "roadrunnes") })).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("refuses one character of the signature, timestamp or secret changed", () => {
    expect(check({ signature: `${expected.slice(0, -1)}4` })).toEqual({ ok: false, reason: "bad_signature" });
    expect(check({ timestamp: "1531420619" }).ok).toBe(false);
    expect(check({ signingSecret: `${secret.slice(0, -1)}6` }).ok).toBe(false);
  });

  it("refuses missing headers and malformed values", () => {
    expect(check({ signature: undefined })).toEqual({ ok: false, reason: "missing_headers" });
    expect(check({ timestamp: undefined })).toEqual({ ok: false, reason: "missing_headers" });
    expect(check({ signingSecret: "" })).toEqual({ ok: false, reason: "missing_headers" });
    expect(check({ timestamp: "1531420618.5" })).toEqual({ ok: false, reason: "bad_timestamp" });
    expect(check({ timestamp: "-1" })).toEqual({ ok: false, reason: "bad_timestamp" });
    expect(check({ signature: expected.replace("v0=", "v1=") })).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    expect(check({ signature: `${expected}00` })).toEqual({ ok: false, reason: "bad_signature" });
    expect(check({ signature: expected.toUpperCase() })).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("holds a five-minute window in both directions", () => {
    const ts = Number(timestamp);
    expect(check({ nowMs: at(ts + 300) }).ok).toBe(true);
    expect(check({ nowMs: at(ts + 301) })).toEqual({ ok: false, reason: "stale" });
    expect(check({ nowMs: at(ts - 300) }).ok).toBe(true);
    expect(check({ nowMs: at(ts - 301) })).toEqual({ ok: false, reason: "future" });
    expect(check({ nowMs: at(ts + 6 * 60) })).toEqual({ ok: false, reason: "stale" });
    expect(check({ nowMs: at(ts - 10 * 60) })).toEqual({ ok: false, reason: "future" });
  });
});
