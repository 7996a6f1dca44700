import { randomUUID } from "node:crypto";
import { context, type Tracer } from "@opentelemetry/api";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Card } from "../core/card.ts";
import { isShipbotError } from "../core/errors.ts";
import type { Conversation, JobState } from "../core/model.ts";
import { renderJobCard } from "../core/render-job-card.ts";
import { contextFromTraceRef, inSpan } from "../observability/tracing.ts";
import type { Keys } from "../queue/keys.ts";
import { type ChatPort, type ChatPorts, isChatRateLimitedError } from "./chat-port.ts";
import { createPaceClock } from "./pace-script.ts";
import { fromStateHash, type StatusStore } from "./status-store.ts";

interface CardRef {
  ref: string;
  seq: number;
}

/** Left before a post and removed once its reference is stored: a post whose answer was lost. */
interface PostingMarker {
  token: string;
  /** When the first and the latest attempt started (ms since epoch). */
  from: number;
  to: number;
}

/** How long a post's marker is kept: the lookup covers the recent past only. */
const postingMarkerSeconds = 15 * 60;

/**
 * The lookup for a post whose answer was lost was answered 429. Its limit is the lookup method's own
 * (Slack: one call a minute outside the Marketplace), not the post pace the card reserved, so only this
 * card waits: holding the post pace would stall every card of the channel for the lookup's minute.
 */
class LookupRateLimitedError extends Error {
  override readonly name = "LookupRateLimitedError";
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number, options?: { cause?: unknown }) {
    super(`card lookup rate limited; retry after ${retryAfterMs} ms`, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Cards to render live in a sorted set scored by when (a transition adds its job in the same script
 * that changes the state). Claiming moves due cards to an in-flight set with a deadline, so each card
 * is rendered by one process at a time and a card whose renderer died is claimed again.
 */
const claimScript = `
local cards, inflight = KEYS[1], KEYS[2]
local limit, claimMs = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', inflight, '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', inflight, id)
  redis.call('ZADD', cards, 'LT', now, id)
end
local claimed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', cards, '-inf', now, 'LIMIT', 0, limit * 4)) do
  if #claimed >= limit then break end
  if not redis.call('ZSCORE', inflight, id) then
    redis.call('ZREM', cards, id)
    redis.call('ZADD', inflight, now + claimMs, id)
    claimed[#claimed + 1] = id
  end
end
return claimed
`;

/**
 * Done with a batch of claims: per card two arguments (id, laterMs); `laterMs` > 0 puts the card back
 * for then (rate limits, platform pacing, a late render to redo). References live under another hash tag
 * (`{notify}`), so the caller stores them with `storeRefsScript` before this releases the claims, and no
 * other process renders a card meanwhile.
 */
const finishScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV, 2 do
  local id, later = ARGV[i], tonumber(ARGV[i + 1])
  redis.call('ZREM', KEYS[2], id)
  if later > 0 then
    redis.call('ZADD', KEYS[1], 'GT', now + later, id)
    redis.call('ZADD', KEYS[1], 'NX', now + later, id)
  end
end
return 1
`;

/**
 * Stores the references of the cards delivered in one turn, all under `{notify}`: per card two keys
 * (reference, posting marker) and two arguments (the reference's JSON, 1 when this render posted).
 * A render can outlast its claim (a chat call that hangs) while another process claims the card and
 * shows a newer state; the late render must not take the card back:
 * - a newer reference to another message stays (the late render's message is the older copy);
 * - a newer reference to the same message: the late edit may have landed after the newer one, so the
 *   message may show the older state now. The older seq is stored (what the message is sure to show)
 *   and the card is rendered again, which edits the newest state back in.
 * Returns, per card, 1 when it must be rendered again.
 */
const storeRefsScript = `
local ttl = tonumber(ARGV[1])
local again = {}
for i = 1, #KEYS, 2 do
  local value, posted = ARGV[i + 1], ARGV[i + 2]
  local mine = cjson.decode(value)
  local ok, stored = pcall(cjson.decode, redis.call('GET', KEYS[i]) or '')
  local newer = ok and type(stored) == 'table' and (tonumber(stored.seq) or 0) > mine.seq
  local same = newer and stored.ref == mine.ref
  if same or not newer then redis.call('SET', KEYS[i], value, 'EX', ttl) end
  if posted == '1' then redis.call('DEL', KEYS[i + 1]) end
  again[#again + 1] = same and 1 or 0
end
return again
`;

/** How long a card's reference is kept after its last render. */
const cardRefSeconds = 7 * 24 * 3600;

type NotifierRedis = Redis & {
  shipbotFinishCards(cards: string, inflight: string, ...args: Array<string | number>): Promise<number>;
  shipbotStoreCardRefs(keyCount: number, ...keysAndArgs: Array<string | number>): Promise<number[]>;
  shipbotClaimCards(cards: string, inflight: string, limit: number, claimMs: number): Promise<string[]>;
};

/** A job card's state and stored reference, read for a whole claim at once. */
interface Preloaded {
  state: JobState | undefined;
  ref: string | null;
  /** The card's posting marker (read with the reference: a card without a reference is about to be posted). */
  posting: string | null;
}

/** What a card shows right now, wherever it comes from (a job, an alert group…). */
export interface CardSnapshot {
  /** Grows with every change; the notifier never renders an older snapshot over a newer one. */
  seq: number;
  conversation: Conversation;
  card: Card;
  /** The trace the card belongs to (`<trace id>-<span id>`), when tracing is on. */
  traceRef?: string;
}

/** A card that cannot render yet (e.g. a reply whose thread is not posted yet): try again this much later. */
export interface CardDeferral {
  retryInMs: number;
}

/**
 * Cards that are not job cards (alert groups, for example) come from a source chosen by the card id's
 * prefix. Their producers add the card id to the cards sorted set (`ZADD LT`, scored by when to render).
 * Undefined: nothing to render (any more).
 */
export interface CardSource {
  prefix: string;
  load(cardId: string): Promise<CardSnapshot | CardDeferral | undefined>;
}

/** Cards that show a job's state in more places than its own card (approval mirrors). */
export interface JobCardFollower {
  /**
   * Called each time the job's own card is about to render, with the state it shows; marks the follower's
   * cards in the cards sorted set. A failure fails this render, which is tried again.
   */
  follow(state: JobState): Promise<void>;
}

export interface NotifierOptions {
  redis: Redis;
  keys: Keys;
  status: StatusStore;
  chats: ChatPorts;
  sources?: CardSource[];
  followers?: JobCardFollower[];
  /** Spans for chat calls, joined to the trace of the job they show. */
  tracer?: Tracer;
  log: Logger;
  concurrency?: number;
  /** How long to sleep when nothing is due. */
  idleMs?: number;
  /** How a card whose platform keeps failing is tried again (defaults: `defaultRetry`). */
  retry?: Partial<CardRetry>;
}

export interface Notifier {
  close(): Promise<void>;
}

const claimMs = 60_000;

/** Backoff for a card whose delivery failed, and how long it keeps failing before the notifier gives up. */
export interface CardRetry {
  firstDelayMs: number;
  maxDelayMs: number;
  /**
   * Counted from the card's first failure in a row. A card's last state has no later one to bring it up
   * to date, so an outage must be outlived, not counted in attempts: twenty attempts were seven minutes,
   * and a longer chat outage left every card that ended meanwhile showing "running" for good.
   */
  giveUpAfterMs: number;
}

const defaultRetry: CardRetry = { firstDelayMs: 500, maxDelayMs: 30_000, giveUpAfterMs: 24 * 3600_000 };

/**
 * Keeps one card per job in its conversation: posted once, then edited in place, always with the newest
 * state (so progress coalesces for free). The card reference lives in Redis, so whichever process
 * renders next edits the same message; platform limits are paced across processes; a 429 delays that
 * card only.
 */
export function createNotifier(options: NotifierOptions): Notifier {
  const { redis, keys, status, chats, log } = options;
  const r = redis as NotifierRedis;
  if (typeof r.shipbotClaimCards !== "function") {
    redis.defineCommand("shipbotClaimCards", { numberOfKeys: 2, lua: claimScript });
    redis.defineCommand("shipbotFinishCards", { numberOfKeys: 2, lua: finishScript });
    redis.defineCommand("shipbotStoreCardRefs", { lua: storeRefsScript });
  }
  const clock = createPaceClock(redis, keys.pace);
  const retry: CardRetry = { ...defaultRetry, ...options.retry };
  /** Cards whose delivery is failing: attempts so far and when the first of them failed. */
  const failures = new Map<string, { count: number; since: number }>();
  const concurrency = options.concurrency ?? 50;
  let stopped = false;

  /** The source of a card id: the longest matching prefix wins, so `bg-` (break-glass) is not `b` (batches). */
  function sourceOf(cardId: string): CardSource | undefined {
    let source: CardSource | undefined;
    for (const s of options.sources ?? [])
      if (cardId.startsWith(s.prefix) && s.prefix.length > (source?.prefix.length ?? -1)) source = s;
    return source;
  }

  const postingKey = (cardId: string) => `${keys.cardRef(cardId)}:posting`;

  /**
   * The state, stored card reference and posting marker of every claimed job card, read in one pipeline
   * per hash tag instead of three round trips per card. A card missing here (a state whose payload is
   * not copied yet, a failed read) is read on its own.
   */
  async function preload(cardIds: string[]): Promise<Map<string, Preloaded>> {
    const out = new Map<string, Preloaded>();
    const jobIds = cardIds.filter((id) => !sourceOf(id));
    if (jobIds.length === 0) return out;
    // States and references live under different hash tags ({ops}, {notify}): one pipeline each, so a
    // Redis Cluster sends each to one shard.
    const states = redis.pipeline();
    const refs = redis.pipeline();
    for (const jobId of jobIds) {
      states.hgetall(keys.job(jobId));
      refs.mget(keys.cardRef(jobId), postingKey(jobId));
    }
    const [stateResults, refResults] = await Promise.all([states.exec(), refs.exec()]);
    jobIds.forEach((jobId, i) => {
      const [hashError, hash] = stateResults?.[i] ?? [];
      const [refError, found] = refResults?.[i] ?? [];
      if (hashError || refError) return;
      const fields = hash as Record<string, string>;
      if (fields.phase && !fields.data) return;
      const [ref = null, posting = null] = found as Array<string | null>;
      out.set(jobId, { state: fromStateHash(jobId, fields), ref, posting });
    });
    return out;
  }

  async function snapshot(
    cardId: string,
    preloaded: Preloaded | undefined,
  ): Promise<CardSnapshot | CardDeferral | undefined> {
    const source = sourceOf(cardId);
    if (source) return source.load(cardId);
    const state = preloaded ? preloaded.state : await status.read(cardId);
    // Before the delivery, so a card that is up to date or fails still brings its followers along.
    if (state) for (const follower of options.followers ?? []) await follower.follow(state);
    return (
      state && {
        seq: state.seq,
        conversation: state.data.conversation,
        card: renderJobCard(state),
        traceRef: state.data.traceId,
      }
    );
  }

  /**
   * Posts a card at most once even when an answer is lost (a timeout after the platform applied the post,
   * or a crash before the reference was stored): a marker with a unique token is stored before the post
   * and the message carries the token; an attempt that finds a marker first looks for that message and
   * adopts it (bringing it up to date) instead of posting again.
   */
  async function postOnce(
    cardId: string,
    chat: ChatPort,
    conversation: Conversation,
    card: Card,
    preloaded?: string | null,
  ) {
    const key = postingKey(cardId);
    const stored = preloaded === undefined ? await redis.get(key) : preloaded;
    const marker = stored ? (JSON.parse(stored) as PostingMarker) : undefined;
    if (marker && chat.find) {
      let found: string | undefined;
      try {
        found = await chat.find(conversation, marker.token, { from: marker.from, to: marker.to });
      } catch (error) {
        if (isChatRateLimitedError(error))
          throw new LookupRateLimitedError(error.retryAfterMs, { cause: error });
        // A lookup that can never work (e.g. a scope missing): a second card beats no card.
        if (!isShipbotError(error) || error.retryable) throw error;
        log.warn({ cardId, err: error }, "cannot look for a card whose post answer was lost; posting");
      }
      if (found !== undefined) {
        log.info({ cardId }, "card was posted though the answer was lost; using that message");
        await chat.update(conversation, found, card);
        return found;
      }
    }
    const now = Date.now();
    const next: PostingMarker = { token: marker?.token ?? randomUUID(), from: marker?.from ?? now, to: now };
    await redis.set(key, JSON.stringify(next), "EX", postingMarkerSeconds);
    try {
      return await chat.post(conversation, card, next.token);
    } catch (error) {
      // A 429 is the platform refusing the post without applying it: this attempt made no message, so the
      // marker goes back to what earlier attempts left (none: no lookup at all). Otherwise every card
      // refused in a burst would need a lookup, which Slack allows once a minute.
      if (isChatRateLimitedError(error)) await restoreMarker(cardId, key, stored);
      throw error;
    }
  }

  /** Puts back the marker a refused post replaced; a failure only costs a lookup that finds nothing. */
  async function restoreMarker(cardId: string, key: string, previous: string | null): Promise<void> {
    try {
      if (previous === null) await redis.del(key);
      else await redis.set(key, previous, "EX", postingMarkerSeconds);
    } catch (error) {
      log.warn({ cardId, err: error }, "could not restore the card's posting marker after a 429");
    }
  }

  /** Renders one card; returns how long to wait before trying it again (0: done). */
  async function render(jobId: string, preloaded: Preloaded | undefined): Promise<number> {
    const state = await snapshot(jobId, preloaded);
    if (!state) return 0;
    if ("retryInMs" in state) return state.retryInMs;
    const conversation = state.conversation;
    const chat = chats[conversation.platform];
    if (!chat) {
      log.error(
        { jobId, platform: conversation.platform },
        "no chat adapter for this platform; card not sent",
      );
      return 0;
    }
    const stored = preloaded ? preloaded.ref : await redis.get(keys.cardRef(jobId));
    const previous = stored ? (JSON.parse(stored) as CardRef) : undefined;
    if (previous && previous.seq >= state.seq) return 0;
    const card = state.card;
    const pace = chat.pace?.(previous ? "update" : "post", conversation);
    if (pace) {
      const wait = await clock.reserve(pace.key, pace.intervalMs);
      if (wait > 0) return wait;
    }
    let ref: string;
    try {
      const deliver = async (): Promise<string> => {
        if (!previous) return postOnce(jobId, chat, conversation, card, preloaded?.posting);
        try {
          await chat.update(conversation, previous.ref, card);
          return previous.ref;
        } catch (error) {
          // The message was deleted: a person still needs to see the state, so post it again.
          if (!isShipbotError(error) || error.code !== "not_found") throw error;
          log.warn({ jobId }, "card message is gone; posting a new one");
          return postOnce(jobId, chat, conversation, card);
        }
      };
      ref = options.tracer
        ? await context.with(contextFromTraceRef(state.traceRef), () =>
            inSpan(
              options.tracer,
              previous ? "chat.update" : "chat.post",
              { "shipbot.card": jobId, "chat.platform": conversation.platform },
              deliver,
            ),
          )
        : await deliver();
    } catch (error) {
      if (error instanceof LookupRateLimitedError) {
        log.info({ jobId, retryAfterMs: error.retryAfterMs }, "card lookup rate limited; this card waits");
        return error.retryAfterMs;
      }
      if (isChatRateLimitedError(error)) {
        log.info(
          { jobId, retryAfterMs: error.retryAfterMs, pace: pace?.key },
          "chat platform rate limited; waiting",
        );
        if (pace) await clock.hold(pace.key, error.retryAfterMs);
        return error.retryAfterMs;
      }
      const failing = failures.get(jobId) ?? { count: 0, since: Date.now() };
      failing.count++;
      const outlived = Date.now() - failing.since >= retry.giveUpAfterMs;
      if ((isShipbotError(error) && !error.retryable) || outlived) {
        failures.delete(jobId);
        log.error({ jobId, err: error }, "card cannot be delivered; giving up on this state");
        return 0;
      }
      failures.set(jobId, failing);
      log.warn({ jobId, err: error, attempt: failing.count }, "card update failed; will retry");
      return Math.min(retry.maxDelayMs, retry.firstDelayMs * 2 ** (failing.count - 1));
    }
    failures.delete(jobId);
    delivered.set(jobId, { ref, seq: state.seq, posted: ref !== previous?.ref });
    return 0;
  }

  /** What `render` delivered, stored with the claim's release (one pipeline for the cards done together). */
  const delivered = new Map<string, CardRef & { posted: boolean }>();
  let pending: Array<{ jobId: string; laterMs: number }> = [];
  let flushing: Promise<void> | undefined;

  /**
   * Stores the references of cards delivered in the same turn and releases their claims, one script
   * call each. A reference is stored before its claim is released, so no other process renders the card
   * meanwhile; a failed store leaves the claim to expire and the card is rendered again (post-once covers
   * it). A render that outlasted its claim and found a newer state stored puts its card back for now.
   */
  function release(jobId: string, laterMs: number): Promise<void> {
    pending.push({ jobId, laterMs });
    flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      const batch = pending;
      pending = [];
      flushing = undefined;
      const keysOf: string[] = [];
      const refArgs: Array<string | number> = [];
      const stored: number[] = [];
      batch.forEach(({ jobId: id }, i) => {
        const done = delivered.get(id);
        delivered.delete(id);
        if (!done) return;
        const refKey = keys.cardRef(id);
        keysOf.push(refKey, `${refKey}:posting`);
        refArgs.push(JSON.stringify({ ref: done.ref, seq: done.seq } satisfies CardRef), done.posted ? 1 : 0);
        stored.push(i);
      });
      const again =
        stored.length > 0
          ? await r.shipbotStoreCardRefs(keysOf.length, ...keysOf, cardRefSeconds, ...refArgs)
          : [];
      const redo = new Set(stored.filter((_, k) => again[k] === 1));
      const args = batch.flatMap(({ jobId: id, laterMs: later }, i) => [
        id,
        redo.has(i) ? Math.max(later, 1) : later,
      ]);
      await r.shipbotFinishCards(keys.cards, keys.cardsInflight, ...args);
    });
    return flushing;
  }

  async function handle(jobId: string, preloaded: Preloaded | undefined): Promise<void> {
    let later = 0;
    try {
      later = await render(jobId, preloaded);
    } catch (error) {
      log.warn({ jobId, err: error }, "card render failed; will retry");
      delivered.delete(jobId);
      later = 1_000;
    }
    await release(jobId, Math.ceil(later));
  }

  const inFlight = new Set<Promise<void>>();
  const loop = (async () => {
    while (!stopped) {
      try {
        const free = concurrency - inFlight.size;
        const claimed =
          free > 0 ? await r.shipbotClaimCards(keys.cards, keys.cardsInflight, free, claimMs) : [];
        const preloaded = claimed.length > 0 ? await preload(claimed).catch(() => new Map()) : new Map();
        for (const jobId of claimed) {
          const task = handle(jobId, preloaded.get(jobId)).finally(() => inFlight.delete(task));
          inFlight.add(task);
        }
        if (claimed.length === 0) {
          await Promise.race([
            new Promise((resolve) => setTimeout(resolve, options.idleMs ?? 50)),
            ...inFlight,
          ]);
        }
      } catch (error) {
        if (stopped) break;
        log.warn({ err: error }, "notifier could not claim cards; retrying");
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  })();

  return {
    async close() {
      stopped = true;
      await loop;
      await Promise.all(inFlight);
    },
  };
}
