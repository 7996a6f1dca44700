import { describe, expect, it } from "vitest";
import { toAuthStatus } from "../../src/adapters/teams/create-teams-adapter.ts";
import { retryAfterOf, toTeamsError } from "../../src/adapters/teams/create-teams-chat.ts";
import { isShipbotError } from "../../src/core/errors.ts";
import { isChatRateLimitedError } from "../../src/notify/chat-port.ts";

const httpError = (status: number, headers: Record<string, string> = {}) =>
  Object.assign(new Error(`HTTP ${status}`), {
    statusCode: status,
    response: { status, headers: { get: (name: string) => headers[name.toLowerCase()] } },
  });

describe("toTeamsError", () => {
  it("429 → ChatRateLimitedError with Retry-After in seconds or as a date", () => {
    const seconds = toTeamsError("send", httpError(429, { "retry-after": "3" }));
    expect(isChatRateLimitedError(seconds) && seconds.retryAfterMs).toBe(3000);
    expect(retryAfterOf(httpError(429, { "retry-after": new Date(10_000).toUTCString() }), 4_000)).toBe(6000);
    const none = toTeamsError("send", httpError(429), 500);
    expect(isChatRateLimitedError(none) && none.retryAfterMs >= 500 && none.retryAfterMs < 1000).toBe(true);
  });

  it("404 → not_found; 401/403/400 → not retryable; 5xx and network → retryable upstream", () => {
    const gone = toTeamsError("update", httpError(404));
    expect(isShipbotError(gone) && gone.code === "not_found" && !gone.retryable).toBe(true);
    for (const status of [400, 401, 403]) {
      const e = toTeamsError("send", httpError(status));
      expect(isShipbotError(e) && e.code === "upstream" && !e.retryable, String(status)).toBe(true);
    }
    for (const error of [httpError(500), httpError(503), new Error("ECONNRESET")]) {
      const e = toTeamsError("send", error);
      expect(isShipbotError(e) && e.retryable).toBe(true);
    }
    expect(toTeamsError("send", httpError(401)).message).toContain("MicrosoftAppPassword");
  });
});

describe("toAuthStatus", () => {
  it("every token problem is 401, a signature library error included; unloadable keys are 503", () => {
    expect(toAuthStatus(Object.assign(new Error("x"), { statusCode: 401 }))).toBe(401);
    expect(toAuthStatus(Object.assign(new Error("invalid signature"), { name: "JsonWebTokenError" }))).toBe(
      401,
    );
    expect(toAuthStatus(new Error("anything else"))).toBe(401);
    expect(toAuthStatus(Object.assign(new Error("Failed to load Keys"), { statusCode: 500 }))).toBe(503);
    expect(toAuthStatus(Object.assign(new Error("connect ECONNREFUSED"), { name: "FetchError" }))).toBe(503);
  });
});
