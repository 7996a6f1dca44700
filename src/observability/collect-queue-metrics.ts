import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import type { Config } from "../core/config.ts";
import { jobPriority } from "../core/model.ts";
import type { Keys } from "../queue/keys.ts";

export interface QueueTarget {
  service: string;
  env: string;
}

export interface QueueMetricsOptions {
  registry: Registry;
  /** The operations queue. */
  queue: Queue;
  /** A fail-fast connection (the runtime's producer), so a scrape never waits for a reconnect. */
  redis: Redis;
  keys: Keys;
  /** Configured service×environment pairs, for the per-target line lengths. */
  targets: QueueTarget[];
  log?: Logger;
  /** A scrape that cannot read Redis within this gives up and reports shipbot_redis_up 0. */
  timeoutMs?: number;
}

/** BullMQ's job states, as `getJobCounts` names them (a paused queue keeps its jobs in "waiting"). */
export const queueStates = [
  "waiting",
  "prioritized",
  "active",
  "delayed",
  "waiting-children",
  "completed",
  "failed",
] as const;

interface Snapshot {
  counts: Record<string, number>;
  oldestWaitingSeconds: number;
  cardsPending: number;
  cardsRendering: number;
  oldestCardDueSeconds: number;
  auditEntries: number;
  lines: number[];
}

/** Every configured service×environment pair. */
export function toQueueTargets(config: Config): QueueTarget[] {
  return Object.entries(config.services).flatMap(([service, svc]) =>
    Object.keys(svc.environments).map((env) => ({ service, env })),
  );
}

/**
 * BullMQ scores a prioritized job as priority × 2^32 + an insertion counter, so within one priority the
 * lowest score is the oldest job. One ZRANGEBYSCORE per priority finds each class's oldest in O(log n).
 */
const priorityBand = 2 ** 32;
const priorities = [...new Set(Object.values(jobPriority))];

async function readSnapshot(options: QueueMetricsOptions): Promise<Snapshot> {
  const { redis, keys, targets } = options;
  const bull = keys.bullPrefix;
  const pipeline = redis.pipeline();
  pipeline.time();
  // Jobs without a priority queue up in a list: new ones pushed on the left, so the oldest is last.
  pipeline.lindex(`${bull}wait`, -1);
  for (const p of priorities) {
    pipeline.zrangebyscore(`${bull}prioritized`, p * priorityBand, (p + 1) * priorityBand - 1, "LIMIT", 0, 1);
  }
  pipeline.zcard(keys.cards);
  pipeline.zrange(keys.cards, "0", "0", "WITHSCORES");
  pipeline.zcard(keys.cardsInflight);
  pipeline.xlen(keys.audit);
  for (const t of targets) pipeline.zcard(keys.line(t.service, t.env));

  const [counts, replies] = await Promise.all([options.queue.getJobCounts(...queueStates), pipeline.exec()]);
  const values = (replies ?? []).map(([error, value]) => {
    if (error) throw error;
    return value;
  });
  let i = 0;
  const next = (): unknown => values[i++];
  const [seconds, micros] = next() as [string, string];
  const nowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  const oldestIds = [next() as string | null, ...priorities.map(() => (next() as string[])[0])].filter(
    (id): id is string => typeof id === "string",
  );
  const cardsPending = Number(next());
  const firstCard = next() as string[];
  const cardsRendering = Number(next());
  const auditEntries = Number(next());
  const lines = targets.map(() => Number(next()));

  // A second, small round trip: the creation time of at most one job per priority class.
  let oldestWaitingSeconds = 0;
  if (oldestIds.length > 0) {
    const stamps = await Promise.all(oldestIds.map((id) => redis.hget(`${bull}${id}`, "timestamp")));
    const oldest = Math.min(...stamps.filter((s): s is string => s !== null).map(Number));
    if (Number.isFinite(oldest)) oldestWaitingSeconds = Math.max(0, nowMs - oldest) / 1000;
  }
  const due = firstCard[1] === undefined ? undefined : Number(firstCard[1]);
  return {
    counts,
    oldestWaitingSeconds,
    cardsPending,
    cardsRendering,
    // Cards scheduled for later (pacing, a 429's Retry-After) are not late yet.
    oldestCardDueSeconds: due === undefined ? 0 : Math.max(0, nowMs - due) / 1000,
    auditEntries,
    lines,
  };
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`reading queue metrics took longer than ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Registers gauges that read the queue's state from Redis when Prometheus scrapes, instead of
 * tracking it on every job event. One scrape costs BullMQ's count script, one pipeline of
 * 8 + (number of targets) commands and at most four hash reads: bounded by configuration, not by how
 * many jobs there are. All gauges of one scrape share that read. If Redis cannot be read they are
 * left empty (no stale values) and shipbot_redis_up says 0.
 */
export function collectQueueMetrics(options: QueueMetricsOptions): void {
  const registers = [options.registry];
  const timeoutMs = options.timeoutMs ?? 2_000;
  let inflight: Promise<Snapshot | undefined> | undefined;

  /** Gauges collect in parallel during one scrape: the first starts the read, the others join it. */
  function snapshot(): Promise<Snapshot | undefined> {
    inflight ??= withTimeout(readSnapshot(options), timeoutMs)
      .catch((error: unknown) => {
        options.log?.warn({ err: error }, "could not read queue metrics from Redis");
        return undefined;
      })
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  }

  const up = new Gauge({
    name: "shipbot_redis_up",
    help: "1 if this scrape could read the queue's state from Redis, else 0.",
    registers,
    async collect() {
      up.set((await snapshot()) ? 1 : 0);
    },
  });
  const jobs = new Gauge({
    name: "shipbot_queue_jobs",
    help: "Jobs in the operations queue by BullMQ state (ready to run: waiting + prioritized; parked in a target's line: delayed).",
    labelNames: ["queue", "state"] as const,
    registers,
    async collect() {
      const s = await snapshot();
      jobs.reset();
      if (!s) return;
      for (const state of queueStates) jobs.set({ queue: "ops", state }, s.counts[state] ?? 0);
    },
  });
  const oldest = new Gauge({
    name: "shipbot_queue_oldest_waiting_seconds",
    help: "Age of the oldest operation that is ready to run but not started (0 when none waits).",
    labelNames: ["queue"] as const,
    registers,
    async collect() {
      const s = await snapshot();
      oldest.reset();
      if (s) oldest.set({ queue: "ops" }, s.oldestWaitingSeconds);
    },
  });
  const gauge = (name: string, help: string, pick: (s: Snapshot) => number): void => {
    const g: Gauge = new Gauge({
      name,
      help,
      registers,
      async collect() {
        const s = await snapshot();
        g.reset();
        if (s) g.set(pick(s));
      },
    });
  };
  gauge(
    "shipbot_cards_pending",
    "Chat cards waiting to be rendered (due now or scheduled for later).",
    (s) => s.cardsPending,
  );
  gauge(
    "shipbot_cards_rendering",
    "Chat cards claimed by a notifier and being rendered.",
    (s) => s.cardsRendering,
  );
  gauge(
    "shipbot_cards_oldest_due_seconds",
    "How long the longest-due card has been due without being rendered (0 when none is late).",
    (s) => s.oldestCardDueSeconds,
  );
  gauge(
    "shipbot_audit_stream_entries",
    "Entries in the audit stream (capped at about 100,000).",
    (s) => s.auditEntries,
  );
  const lines = new Gauge({
    name: "shipbot_target_line_jobs",
    help: "Operations waiting in line for a busy service×environment.",
    labelNames: ["service", "env"] as const,
    registers,
    async collect() {
      const s = await snapshot();
      lines.reset();
      if (!s) return;
      options.targets.forEach((t, index) => {
        lines.set({ service: t.service, env: t.env }, s.lines[index] ?? 0);
      });
    },
  });
}
