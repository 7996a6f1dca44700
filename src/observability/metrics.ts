import type { IncomingMessage, ServerResponse } from "node:http";
import type { Job, Worker } from "bullmq";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import type { ChatPort, ChatPorts } from "../notify/chat-port.ts";
import { isChatRateLimitedError } from "../notify/chat-port.ts";

/** What became of a chat command. */
export type CommandOutcome = "accepted" | "answered" | "refused" | "denied" | "failed";

/** What became of one run of an operation. `retried`: it failed and BullMQ will run it again. */
export type JobOutcome = "succeeded" | "failed" | "retried" | "cancelled" | "superseded";

export type ChatCallOutcome = "ok" | "rate_limited" | "error";

/** Which Redis connection reported an error. */
export type RedisConnection = "producer" | "worker" | "deriver" | "notifier";

export interface MetricsOptions {
  /**
   * Command names that may appear as a label (the registry's names). Anything else is counted as
   * `unknown`, so text typed in chat can never create a new time series.
   */
  commandNames: Iterable<string>;
  /** Node.js process metrics (CPU, memory, event loop lag, GC); on by default. */
  processMetrics?: boolean;
}

/**
 * shipbot's own metrics, one registry per process. Everything here is counted in process memory on
 * events the process sees anyway; queue depths and backlogs are read from Redis at scrape time
 * (collect-queue-metrics.ts), so the hot path pays nothing for them. Labels are closed sets (command
 * names, kinds, outcomes, platforms, configured environments): never job ids, user ids or free text.
 */
export interface Metrics {
  registry: Registry;
  commands: Counter<"command" | "outcome">;
  permissionDenials: Counter<"command">;
  ackSeconds: Histogram<"platform">;
  jobSeconds: Histogram<"kind" | "outcome">;
  jobWaitSeconds: Histogram<"kind">;
  leaseWaits: Counter<"env">;
  chatCalls: Counter<"platform" | "operation" | "outcome">;
  alertsReceived: Counter<"status">;
  alertsDeduplicated: Counter;
  approvalSeconds: Histogram<"outcome">;
  redisErrors: Counter<"connection">;
  /** Counts one command; a denial also counts as a permission denial. */
  countCommand(command: string, outcome: CommandOutcome): void;
}

/** Slack must see the ack within 3 s; the buckets are dense below that. */
const ackBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5];
/** From a no-op executor's milliseconds up to the longest rollout shipbot follows (15 min) and beyond. */
const jobBuckets = [0.05, 0.25, 1, 5, 15, 30, 60, 120, 300, 600, 900, 1800];
const waitBuckets = [0.01, 0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600];

/** Builds the registry with every shipbot metric registered (at zero where it has no labels). */
export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  if (options.processMetrics !== false) {
    // The usual names (process_*, nodejs_*), so existing Node.js dashboards work unchanged.
    collectDefaultMetrics({ register: registry });
    // These three are gauges named like counters, which Prometheus' linter rejects; each is the sum
    // of its per-type sibling without the suffix, so nothing is lost.
    for (const name of [
      "nodejs_active_handles_total",
      "nodejs_active_requests_total",
      "nodejs_active_resources_total",
    ]) {
      registry.removeSingleMetric(name);
    }
  }
  const registers = [registry];
  const known = new Set(options.commandNames);

  const commands = new Counter({
    name: "shipbot_commands_total",
    help: "Chat commands handled, by command and outcome (accepted: jobs queued; answered: a reply; refused: invalid; denied: not allowed; failed: internal error).",
    labelNames: ["command", "outcome"] as const,
    registers,
  });
  const permissionDenials = new Counter({
    name: "shipbot_permission_denials_total",
    help: "Commands and cancels refused because the person lacks the role, by command.",
    labelNames: ["command"] as const,
    registers,
  });
  const ackSeconds = new Histogram({
    name: "shipbot_command_ack_seconds",
    help: "Time from receiving a chat platform's request to acknowledging it, by platform.",
    labelNames: ["platform"] as const,
    buckets: ackBuckets,
    registers,
  });
  const jobSeconds = new Histogram({
    name: "shipbot_job_duration_seconds",
    help: "Run time of operations (deploy, rollback, scale) from start to end of the run, by kind and outcome.",
    labelNames: ["kind", "outcome"] as const,
    buckets: jobBuckets,
    registers,
  });
  const jobWaitSeconds = new Histogram({
    name: "shipbot_job_wait_seconds",
    help: "Time from queueing an operation to the start of its final run (line and lease waits included), by kind.",
    labelNames: ["kind"] as const,
    buckets: waitBuckets,
    registers,
  });
  const leaseWaits = new Counter({
    name: "shipbot_lease_waits_total",
    help: "Times an operation found its service×environment busy and waited in line, by environment.",
    labelNames: ["env"] as const,
    registers,
  });
  const chatCalls = new Counter({
    name: "shipbot_chat_api_calls_total",
    help: "Card posts and edits sent to chat platforms, by platform, operation and outcome (rate_limited: HTTP 429).",
    labelNames: ["platform", "operation", "outcome"] as const,
    registers,
  });
  const alertsReceived = new Counter({
    name: "shipbot_alerts_received_total",
    help: "Alerts received from Alertmanager, by status (firing or resolved).",
    labelNames: ["status"] as const,
    registers,
  });
  const alertsDeduplicated = new Counter({
    name: "shipbot_alerts_deduplicated_total",
    help: "Alerts dropped because the same fingerprint and status was already handled.",
    registers,
  });
  const approvalSeconds = new Histogram({
    name: "shipbot_approval_decision_seconds",
    help: "Time from an approval request to its decision, by outcome (approved or rejected).",
    labelNames: ["outcome"] as const,
    buckets: [10, 30, 60, 120, 300, 600, 1800, 3600, 7200],
    registers,
  });
  const redisErrors = new Counter({
    name: "shipbot_redis_errors_total",
    help: "Errors reported by shipbot's Redis connections (disconnects, timeouts), by connection.",
    labelNames: ["connection"] as const,
    registers,
  });

  // Known series start at zero, so rate() and increase() see the first error or alert.
  for (const connection of ["producer", "worker", "deriver", "notifier"] satisfies RedisConnection[]) {
    redisErrors.labels({ connection }).inc(0);
  }
  for (const status of ["firing", "resolved"]) alertsReceived.labels({ status }).inc(0);

  return {
    registry,
    commands,
    permissionDenials,
    ackSeconds,
    jobSeconds,
    jobWaitSeconds,
    leaseWaits,
    chatCalls,
    alertsReceived,
    alertsDeduplicated,
    approvalSeconds,
    redisErrors,
    countCommand(command, outcome) {
      const name = known.has(command) ? command : "unknown";
      commands.inc({ command: name, outcome });
      if (outcome === "denied") permissionDenials.inc({ command: name });
    },
  };
}

/** The command word of a chat text, for labelling commands that failed before routing named them. */
export function toCommandWord(text: string): string {
  const word = /^\s*\/?([a-z-]{1,20})/i.exec(text)?.[1];
  return word === undefined ? "unknown" : word.toLowerCase();
}

interface OpJobData {
  kind?: unknown;
}

const kinds = new Set(["deploy", "rollback", "scale"]);
const finishedPhases = new Set(["succeeded", "cancelled", "superseded"]);

function kindOf(job: Job): string {
  const kind = (job.data as OpJobData | undefined)?.kind;
  return typeof kind === "string" && kinds.has(kind) ? kind : "unknown";
}

function observeJob(metrics: Metrics, job: Job, outcome: JobOutcome): void {
  const started = job.processedOn;
  if (started === undefined) return;
  const kind = kindOf(job);
  const ended = typeof job.finishedOn === "number" ? job.finishedOn : Date.now();
  metrics.jobSeconds.observe({ kind, outcome }, Math.max(0, ended - started) / 1000);
  if (outcome !== "retried")
    metrics.jobWaitSeconds.observe({ kind }, Math.max(0, started - job.timestamp) / 1000);
}

/**
 * Times the operations worker's jobs from the events BullMQ already emits in this process, so the
 * worker's code path carries no metrics calls. A job parked in its target's line (DelayedError) emits
 * nothing; only runs that end are observed. Returns a function that detaches the listeners.
 */
export function observeOpWorker(worker: Worker, metrics: Metrics): () => void {
  const onCompleted = (job: Job, result: unknown): void => {
    const phase = (result as { phase?: unknown } | undefined)?.phase;
    const outcome =
      typeof phase === "string" && finishedPhases.has(phase) ? (phase as JobOutcome) : "succeeded";
    observeJob(metrics, job, outcome);
  };
  // BullMQ sets finishedOn only when the job has failed for good; otherwise it will run again.
  const onFailed = (job: Job | undefined): void => {
    if (job) observeJob(metrics, job, typeof job.finishedOn === "number" ? "failed" : "retried");
  };
  worker.on("completed", onCompleted);
  worker.on("failed", onFailed);
  return () => {
    worker.off("completed", onCompleted);
    worker.off("failed", onFailed);
  };
}

/** Wraps each platform's chat port so every card post and edit is counted, 429s apart. */
export function instrumentChatPorts(chats: ChatPorts, metrics: Metrics): ChatPorts {
  const wrapped: ChatPorts = {};
  for (const [platform, port] of Object.entries(chats) as Array<[keyof ChatPorts, ChatPort | undefined]>) {
    if (!port) continue;
    const counted = async <T>(operation: "post" | "update", call: () => Promise<T>): Promise<T> => {
      try {
        const result = await call();
        metrics.chatCalls.inc({ platform, operation, outcome: "ok" });
        return result;
      } catch (error) {
        metrics.chatCalls.inc({
          platform,
          operation,
          outcome: isChatRateLimitedError(error) ? "rate_limited" : "error",
        });
        throw error;
      }
    };
    const instrumented: ChatPort = {
      // The token and the lookup are what post a card once when an answer is lost: both pass through.
      post: (conversation, card, token) => counted("post", () => port.post(conversation, card, token)),
      update: (conversation, ref, card) => counted("update", () => port.update(conversation, ref, card)),
    };
    if (port.find) {
      const find = port.find.bind(port);
      instrumented.find = (conversation, token, window) => find(conversation, token, window);
    }
    if (port.pace) {
      const pace = port.pace.bind(port);
      instrumented.pace = (operation, conversation) => pace(operation, conversation);
    }
    wrapped[platform] = instrumented;
  }
  return wrapped;
}

type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/**
 * Wraps a platform's webhook routes so the time until the response is sent (the ack) is observed.
 * Adapters acknowledge before doing the work, so this is the latency the platform sees.
 */
export function timeAcks(
  routes: Record<string, RouteHandler>,
  metrics: Metrics,
  platform: string,
): Record<string, RouteHandler> {
  const histogram = metrics.ackSeconds.labels({ platform });
  const timed: Record<string, RouteHandler> = {};
  for (const [key, handler] of Object.entries(routes)) {
    timed[key] = (req, res) => {
      const stop = histogram.startTimer();
      res.once("finish", () => stop());
      return handler(req, res);
    };
  }
  return timed;
}

/** Counts errors a Redis connection reports (ioredis emits "error" per failed connect or lost link). */
export function countRedisErrors(
  redis: { on(event: "error", listener: (error: unknown) => void): unknown },
  metrics: Metrics,
  connection: RedisConnection,
): void {
  const child = metrics.redisErrors.labels({ connection });
  redis.on("error", () => child.inc());
}
