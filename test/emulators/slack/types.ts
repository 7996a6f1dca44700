/** Public shapes of the Slack Web API emulator. */

export interface SlackEmulatorUser {
  id: string;
  name: string;
  team_id?: string;
}

export interface SlackEmulatorUsergroup {
  id: string;
  handle: string;
  users: string[];
}

/**
 * One limiter rule, in real-time units; the emulator scales it by `timeScale`.
 * - `bucket`: token bucket refilled at `perSecond`, holding at most `burst` tokens, one bucket per channel.
 * - `window`: at most `limit` calls in any trailing `windowMs`, one window per method (the workspace).
 */
export type SlackRateRule =
  | { kind: "bucket"; perSecond: number; burst: number }
  | { kind: "window"; limit: number; windowMs: number };

export interface SlackEmulatorOptions {
  host?: string;
  port?: number;
  /** The only token accepted; default "xoxb-test-token". */
  botToken?: string;
  /**
   * Scale for all time windows: 1 = real time; tests use e.g. 0.05 so "1 per second" becomes 1 per 50 ms.
   * Also scales the lifetime of trigger ids.
   */
  timeScale?: number;
  /** Set false to turn rate limits off. */
  rateLimits?: boolean;
  /** Replace the rule of some methods (e.g. a burst of 1 to make a test sharper). */
  limits?: Record<string, SlackRateRule>;
  users?: SlackEmulatorUser[];
  usergroups?: SlackEmulatorUsergroup[];
  /**
   * Channel ids the bot is a member of. Posting to a channel in `otherChannels` gives `not_in_channel`;
   * any other id gives `channel_not_found`. When omitted, every well-formed channel id (C…, G…, D…) counts as
   * a channel the bot is in.
   */
  channels?: string[];
  /** Channels that exist but the bot is not a member of. */
  otherChannels?: string[];
}

export interface SlackMessageVersion {
  text: string;
  blocks?: unknown[];
  at: number;
}

export interface SlackMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  /**
   * Set when `thread_ts` named no top-level message of the channel. Slack still answers ok:true to such a post
   * but shows the reply nowhere, so a test should assert there are none.
   */
  orphan?: true;
  text: string;
  blocks?: unknown[];
  /** Message metadata as posted (`metadata` of chat.postMessage); history returns it with `include_all_metadata`. */
  metadata?: SlackMessageMetadata;
  user: string;
  /** How many successful chat.update calls changed this message. */
  edits: number;
  /** Every version, oldest first: history[0] is the message as posted, the last entry is the current one. */
  history: SlackMessageVersion[];
}

export interface SlackMessageMetadata {
  event_type: string;
  event_payload: Record<string, unknown>;
}

export interface SlackEphemeral {
  channel: string;
  user: string;
  text: string;
  blocks?: unknown[];
  thread_ts?: string;
}

export interface SlackOpenedView {
  id: string;
  trigger_id: string;
  user: string;
  view: Record<string, unknown>;
}

export interface SlackCall {
  method: string;
  /** Wall-clock time (ms since epoch) the request arrived. */
  at: number;
  /** HTTP status sent; 0 for a request left hanging by `failNext(…, "timeout" | "lost")`. */
  status: number;
  ok: boolean;
  error?: string;
  /** For 429s: the exact (scaled) wait in ms behind the whole-second Retry-After header. */
  retryAfterMs?: number;
  /** Arguments as received, without the token. */
  args: Record<string, unknown>;
}

export interface SlackEmulator {
  url: string;
  /** The bot's own user id (what `auth.test` returns and what posted messages carry). */
  botUserId: string;
  /** Messages in ts order, optionally of one channel (thread replies included). */
  messages(channel?: string): SlackMessage[];
  message(channel: string, ts: string): SlackMessage | undefined;
  ephemerals(channel?: string): SlackEphemeral[];
  views(): SlackOpenedView[];
  /** Every request, including 429s and injected faults, oldest first. */
  calls(method?: string): SlackCall[];
  /** How many 429s were sent (by the limiter or by `failNext(…, 429)`). */
  rateLimited(method?: string): number;
  /**
   * Fault injection: the next `count` (default 1) requests to `method` get `status` (e.g. 500, 503) without
   * being applied, or are left hanging ("timeout") until the client gives up or the emulator closes. "lost"
   * applies the call, then leaves it hanging the same way: the call took effect but its answer never arrives.
   */
  failNext(method: string, status: number | "timeout" | "lost", count?: number): void;
  /** Simulates a message posted by a person (not the bot), e.g. to thread under it. */
  addMessage(input: { channel: string; user: string; text: string; thread_ts?: string }): SlackMessage;
  /** A trigger id as Slack puts in a slash command or button payload: single use, valid 3 s (scaled). */
  triggerId(user?: string): string;
  /**
   * A response_url as Slack puts in a slash command (or, with kind "actions", a click) by `user` in
   * `channel`: it takes five POSTs within 30 minutes (scaled), each shown to that person only unless it says
   * `response_type: "in_channel"`. Uses are recorded as calls of method `response_url`.
   */
  responseUrl(user: string, channel: string, kind?: "commands" | "actions"): string;
  /** Clears messages, calls, limiter state, faults, trigger ids and response_urls; keeps the configuration. */
  reset(): void;
  close(): Promise<void>;
}
