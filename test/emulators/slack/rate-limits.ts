import type { SlackRateRule } from "./types.ts";

/*
 * Slack publishes tiers as "N+ per minute, per method, per app, per workspace" and chat.postMessage as
 * "generally one message per second per channel, short bursts >1 allowed" without a burst size
 * (api.slack.com/apis/rate-limits). Method → tier follows Slack's own Java SDK table (MethodsRateLimits).
 *
 * Concrete rules chosen here:
 * - chat.postMessage: token bucket per channel, 1 token per second, at most 3 tokens. A small burst absorbs the
 *   jitter of a sender paced at one per second, while ten posts fired at once still hit 429 from the fourth on.
 *   Slack's unpublished workspace-wide cap on posting is not modelled.
 * - Tier N methods: at most the tier's floor (20 / 50 / 100 per minute) in any trailing 60 s, i.e. a sliding
 *   window per method. "Bursts welcome" is honoured (the whole minute's budget may go at once) and nothing
 *   beyond the published floor is granted, so a sender that passes here stays inside what Slack promises.
 * - conversations.history and conversations.replies: Tier 1 with at most 15 messages a call, Slack's limit
 *   for apps not approved for the Marketplace since 2025 (1 request a minute); Marketplace apps get Tier 3.
 * - auth.test ("hundreds per minute"): 300 per minute.
 * A refused call does not consume budget.
 */
const tier1: SlackRateRule = { kind: "window", limit: 1, windowMs: 60_000 };
const tier2: SlackRateRule = { kind: "window", limit: 20, windowMs: 60_000 };
const tier3: SlackRateRule = { kind: "window", limit: 50, windowMs: 60_000 };
const tier4: SlackRateRule = { kind: "window", limit: 100, windowMs: 60_000 };

export const defaultRateRules: Readonly<Record<string, SlackRateRule>> = {
  "chat.postMessage": { kind: "bucket", perSecond: 1, burst: 3 },
  "chat.update": tier3,
  "chat.postEphemeral": tier4,
  "conversations.history": tier1,
  "conversations.info": tier3,
  "conversations.replies": tier1,
  "usergroups.users.list": tier2,
  "users.info": tier4,
  "views.open": tier4,
  "auth.test": { kind: "window", limit: 300, windowMs: 60_000 },
};

export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Holds limiter state; `now` is a monotonic clock in ms so tests are immune to wall-clock steps. */
export class RateLimiter {
  readonly #rules: Readonly<Record<string, SlackRateRule>>;
  readonly #scale: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  readonly #windows = new Map<string, number[]>();

  constructor(rules: Readonly<Record<string, SlackRateRule>>, timeScale: number, now: () => number) {
    this.#rules = rules;
    this.#scale = timeScale;
    this.#now = now;
  }

  /** Takes one unit of budget for `method` (keyed by channel for bucket rules) or says how long to wait. */
  take(method: string, channel: string): RateDecision {
    const rule = this.#rules[method];
    if (rule === undefined) return { allowed: true };
    const now = this.#now();
    if (rule.kind === "bucket") return this.#takeToken(`${method}\u0000${channel}`, rule, now);
    return this.#takeSlot(method, rule, now);
  }

  reset(): void {
    this.#buckets.clear();
    this.#windows.clear();
  }

  #takeToken(key: string, rule: { perSecond: number; burst: number }, now: number): RateDecision {
    const perMs = rule.perSecond / (1000 * this.#scale);
    const bucket = this.#buckets.get(key) ?? { tokens: rule.burst, updatedAt: now };
    bucket.tokens = Math.min(rule.burst, bucket.tokens + (now - bucket.updatedAt) * perMs);
    bucket.updatedAt = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterMs: Math.ceil((1 - bucket.tokens) / perMs) };
  }

  #takeSlot(key: string, rule: { limit: number; windowMs: number }, now: number): RateDecision {
    const windowMs = rule.windowMs * this.#scale;
    const stamps = this.#windows.get(key) ?? [];
    while (stamps.length > 0 && (stamps[0] ?? 0) <= now - windowMs) stamps.shift();
    this.#windows.set(key, stamps);
    if (stamps.length < rule.limit) {
      stamps.push(now);
      return { allowed: true };
    }
    return { allowed: false, retryAfterMs: Math.max(1, Math.ceil((stamps[0] ?? now) + windowMs - now)) };
  }
}

/**
 * Retry-After must be whole seconds: the real client parses it with parseInt and sleeps that many seconds.
 * It is the scaled wait rounded up, and never below 1 (Slack never sends 0). So a client that honours it is
 * always past the window when it retries (honest), while with timeScale < 1 the emulator's own windows stay
 * short (fast); tests that must not sleep use `rejectRateLimitedCalls` and the exact `retryAfterMs` instead.
 */
export function retryAfterHeader(retryAfterMs: number): string {
  return String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
}
