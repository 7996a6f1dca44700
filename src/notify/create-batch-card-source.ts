import type { Redis } from "ioredis";
import { type BatchView, renderBatchCard } from "../core/render-batch-card.ts";
import type { Keys } from "../queue/keys.ts";
import type { BatchMeta } from "../queue/ops-queue.ts";
import type { CardSource } from "./create-notifier.ts";

/** Batch ids (see createBatchId) and so their card ids start with this. */
export const batchCardPrefix = "b";

const count = (value: string | undefined): number => Math.max(0, Number(value ?? 0) || 0);

/** Builds a batch's view from its hash and failure list; undefined once the batch is gone. */
export function fromBatchHash(
  batchId: string,
  hash: Record<string, string>,
  failures: string[],
): (BatchView & { seq: number; meta: BatchMeta }) | undefined {
  if (!hash.meta) return undefined;
  const meta = JSON.parse(hash.meta) as BatchMeta;
  return {
    batchId,
    seq: count(hash.seq),
    meta,
    kind: meta.kind,
    env: meta.env,
    ...(meta.version === undefined ? {} : { version: meta.version }),
    total: meta.total,
    services: meta.services,
    requestedBy: meta.requestedBy,
    ...(meta.skipped ? { skipped: meta.skipped } : {}),
    running: count(hash.running),
    succeeded: count(hash.succeeded),
    failed: count(hash.failed),
    cancelled: count(hash.cancelled),
    failures: failures.map((entry) => {
      const bar = entry.indexOf("|");
      return { service: entry.slice(0, bar), reason: entry.slice(bar + 1).replace(/^Failed: /, "") };
    }),
  };
}

/**
 * The one card of a fan-out (`deploy api,web staging v2`), for the notifier: the transition script keeps
 * the batch's counters and marks this card, so a thousand jobs make one card edited in place.
 */
export function createBatchCardSource(options: {
  redis: Redis;
  keys: Pick<Keys, "batch" | "batchFailures">;
}): CardSource {
  const { redis, keys } = options;
  return {
    prefix: batchCardPrefix,
    async load(cardId) {
      const replies = await redis
        .multi()
        .hgetall(keys.batch(cardId))
        .lrange(keys.batchFailures(cardId), 0, -1)
        .exec();
      const [hashReply, failuresReply] = replies ?? [];
      if (hashReply?.[0]) throw hashReply[0];
      if (failuresReply?.[0]) throw failuresReply[0];
      const batch = fromBatchHash(
        cardId,
        (hashReply?.[1] ?? {}) as Record<string, string>,
        (failuresReply?.[1] ?? []) as string[],
      );
      if (!batch) return undefined;
      return {
        seq: batch.seq,
        conversation: batch.meta.conversation,
        card: renderBatchCard(batch),
        traceRef: batch.meta.traceId,
      };
    },
  };
}
