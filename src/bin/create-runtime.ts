import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { commandRegistry } from "../../commands/index.ts";
import {
  createAlertActionHandler,
  createAlertCardSource,
  defaultAlertsConfig,
  startAlertProcessor,
} from "../alerts/index.ts";
import { type ChatAction, createActionHandler } from "../app/handle-action.ts";
import { type CommandHandler, type CommandReply, createCommandHandler } from "../app/handle-command.ts";
import { startApprovalSweeper } from "../app/sweep-approvals.ts";
import { type AuditLog, createAuditLog } from "../audit/audit-log.ts";
import type { Config } from "../core/config.ts";
import type { ExecutorPort } from "../executors/port.ts";
import type { GitHubClient } from "../github/index.ts";
import type { ChatPorts } from "../notify/chat-port.ts";
import { createApprovalMirrors } from "../notify/create-approval-mirrors.ts";
import { createBatchCardSource } from "../notify/create-batch-card-source.ts";
import { createBreakGlassCardSource } from "../notify/create-break-glass-cards.ts";
import { createDeriver } from "../notify/create-deriver.ts";
import { type CardSource, createNotifier } from "../notify/create-notifier.ts";
import { createReminderCardSource } from "../notify/create-reminder-card-source.ts";
import { createStatusStore, type StatusStore } from "../notify/status-store.ts";
import {
  countRedisErrors,
  instrumentChatPorts,
  type Metrics,
  observeOpWorker,
} from "../observability/metrics.ts";
import type { Tracing } from "../observability/tracing.ts";
import { createApprovals } from "../queue/approval-scripts.ts";
import { createKeys, type Keys } from "../queue/keys.ts";
import { createOpsQueue, type OpsQueue } from "../queue/ops-queue.ts";
import { checkEvictionPolicy, closeRedis, createRedis, waitForReady, whenSettled } from "../queue/redis.ts";
import { startRetention } from "../queue/retention.ts";
import { createOpWorker } from "../worker/create-op-worker.ts";

export interface RuntimeOptions {
  config: Config;
  redisUrl: string;
  executor: ExecutorPort;
  chats: ChatPorts;
  log: Logger;
  /** Accept commands (serve), run operations (worker), keep records and cards up to date (worker). */
  accept: boolean;
  work: boolean;
  notify: boolean;
  concurrency?: number;
  /** OpenTelemetry traces, when configured. */
  tracing?: Tracing;
  /** GitHub, for services whose config names a repository. */
  github?: GitHubClient;
  /** Cards other than job cards (e.g. alert groups), rendered by this process's notifier. */
  cardSources?: CardSource[];
  /** Where this process counts commands, jobs, chat calls and Redis errors (see docs/metrics.md). */
  metrics?: Metrics;
  /** Alertmanager's base URL, for the Silence button of alert cards (ALERTMANAGER_URL). */
  alertmanagerUrl?: string;
}

export interface Runtime {
  keys: Keys;
  /** Fail-fast connection used on the accept path and for reads. */
  redis: Redis;
  handle: CommandHandler;
  /** Button clicks, turned into the commands they stand for. */
  handleAction(action: ChatAction): Promise<CommandReply>;
  ops: OpsQueue;
  status: StatusStore;
  audit: AuditLog;
  /** The operations worker, when this process runs jobs. */
  workers: Worker[];
  /** Stops taking work, lets running jobs finish, closes connections. */
  close(): Promise<void>;
}

/**
 * Stops the operations worker. With Redis reachable it waits for the running jobs, as a graceful
 * shutdown should. Without, a job could not record its outcome anyway, and BullMQ's graceful close would
 * wait for its blocking connection to report its end, which ioredis never does for a connection that is
 * between reconnect attempts: the worker stops at once, and BullMQ's stalled check hands the jobs it
 * was running to another worker (whose executor reads the cluster first and does not apply twice).
 */
async function closeOpWorker(worker: Worker, connection: Redis, log: Logger): Promise<void> {
  if (connection.status === "ready") return worker.close();
  log.warn("Redis is unreachable: stopping without waiting for running jobs; they will be retried");
  await worker.close(true);
}

/** Builds the parts one process needs; every piece of state lives in Redis. */
export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  const { config, log } = options;
  const keys = createKeys(config.redisPrefix);
  const alerts = config.alerts ?? defaultAlertsConfig;
  // Aborted by close(): from then on no connection waits for an unreachable Redis (see createRedis).
  const stopping = new AbortController();
  const { signal } = stopping;
  // The accept path fails fast so a person hears "queue unavailable" at once; workers wait for Redis.
  const redis = createRedis({ url: options.redisUrl, role: "producer", signal });
  redis.on("error", (error) => log.warn({ err: error }, "redis connection problem"));
  const { metrics } = options;
  if (metrics) countRedisErrors(redis, metrics, "producer");
  const status = createStatusStore(redis, keys);
  const audit = createAuditLog(redis, keys);
  const ops = createOpsQueue(redis, keys, status, log, options.tracing?.bullmq);
  const approvals = createApprovals(redis, keys);
  const handle = createCommandHandler({
    config,
    registry: commandRegistry,
    ops,
    status,
    audit,
    executor: options.executor,
    log,
    redis,
    keys,
    approvals,
    ...(metrics ? { metrics } : {}),
    ...(options.github ? { github: options.github } : {}),
    ...(options.tracing ? { tracer: options.tracing.tracer } : {}),
  });

  const closers: Array<() => Promise<unknown>> = [];
  /** This runtime's connections, settled before any step of close() may disconnect one. */
  const connections: Redis[] = [redis];
  const workers: Worker[] = [];
  if (options.work || options.notify) {
    const workerRedis = createRedis({ url: options.redisUrl, role: "worker", signal });
    connections.push(workerRedis);
    workerRedis.on("error", (error) => log.warn({ err: error }, "redis connection problem (worker)"));
    if (metrics) countRedisErrors(workerRedis, metrics, "worker");
    const workerStatus = createStatusStore(workerRedis, keys);
    const workerOps = createOpsQueue(workerRedis, keys, workerStatus, log, options.tracing?.bullmq);
    if (options.work) {
      // The worker's own connection: its fetch commands also take each job's lease (acquire-on-fetch.ts).
      const fetchRedis = workerRedis.duplicate();
      connections.push(fetchRedis);
      fetchRedis.on("error", (error) => log.warn({ err: error }, "redis connection problem (worker fetch)"));
      if (metrics) countRedisErrors(fetchRedis, metrics, "worker");
      const worker = createOpWorker({
        connection: fetchRedis,
        keys,
        config,
        executor: options.executor,
        status: workerStatus,
        leases: workerOps.leases,
        queue: workerOps.queue,
        log,
        ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
        ...(metrics ? { metrics } : {}),
        ...(options.github ? { github: options.github } : {}),
        ...(options.tracing ? { tracing: options.tracing } : {}),
      });
      if (metrics) observeOpWorker(worker as unknown as Worker, metrics);
      workers.push(worker as unknown as Worker);
      const retention = startRetention({ queue: workerOps.queue, redis: workerRedis, log });
      closers.push(async () => {
        await retention.close();
        await closeOpWorker(worker as unknown as Worker, fetchRedis, log);
        await closeRedis(fetchRedis);
      });
    }
    if (options.notify) {
      const consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
      const deriverRedis = workerRedis.duplicate();
      connections.push(deriverRedis);
      deriverRedis.on("error", (error) => log.warn({ err: error }, "redis connection problem (deriver)"));
      if (metrics) countRedisErrors(deriverRedis, metrics, "deriver");
      const deriver = createDeriver({ redis: deriverRedis, keys, queue: workerOps.queue, log, consumer });
      // Alert notifications are applied where cards are kept up to date; their cards render here too.
      const alertProcessor = startAlertProcessor({
        redis: workerRedis,
        keys,
        config: alerts,
        log,
        ...(metrics ? { metrics } : {}),
      });
      const alertCards = createAlertCardSource({
        redis: workerRedis,
        keys,
        config: alerts,
        history: (service, env, count) => workerStatus.history(service, env, count),
      });
      const mirrors = createApprovalMirrors({ redis: workerRedis, keys, config, status: workerStatus });
      // A connection of its own: ioredis copies every script defined on a connection into each pipeline
      // made from it, and the worker's carries BullMQ's sixty. The notifier makes pipelines per batch of
      // cards (7–13% of its process's CPU per job with records and cards, docs/performance.md).
      const notifierRedis = workerRedis.duplicate();
      connections.push(notifierRedis);
      notifierRedis.on("error", (error) => log.warn({ err: error }, "redis connection problem (notifier)"));
      if (metrics) countRedisErrors(notifierRedis, metrics, "notifier");
      const notifier = createNotifier({
        redis: notifierRedis,
        keys,
        status: workerStatus,
        chats: metrics ? instrumentChatPorts(options.chats, metrics) : options.chats,
        log,
        sources: [
          ...(options.cardSources ?? []),
          alertCards,
          createBatchCardSource({ redis: workerRedis, keys }),
          createBreakGlassCardSource({ redis: workerRedis, keys, config }),
          createReminderCardSource({ redis: workerRedis, keys, config }),
          mirrors.source,
        ],
        followers: [mirrors.follower],
        ...(options.tracing ? { tracer: options.tracing.tracer } : {}),
      });
      const sweeper = startApprovalSweeper({
        approvals: createApprovals(workerRedis, keys),
        ops: workerOps,
        status: workerStatus,
        log,
      });
      closers.push(
        () => alertProcessor.close(),
        async () => {
          await notifier.close();
          await closeRedis(notifierRedis);
        },
        () => deriver.close(),
        () => sweeper.close(),
      );
    }
    closers.push(
      () => workerOps.close(),
      () => closeRedis(workerRedis),
    );
  }

  if (await waitForReady(redis, 5_000)) {
    const warning = await checkEvictionPolicy(redis);
    if (warning) log.warn(warning);
  } else {
    log.error(
      { redis: options.redisUrl.replace(/\/\/[^@]*@/, "//***@") },
      "Redis is not reachable; commands are refused until it is",
    );
  }

  return {
    keys,
    redis,
    handle,
    handleAction: createActionHandler(handle, {
      config,
      ops,
      status,
      approvals,
      audit,
      ...(metrics ? { metrics } : {}),
      alerts: createAlertActionHandler({
        redis,
        keys,
        config,
        alerts,
        handle,
        audit,
        log,
        ...(options.alertmanagerUrl ? { alertmanagerUrl: options.alertmanagerUrl } : {}),
      }),
    }),
    ops,
    status,
    audit,
    workers,
    async close() {
      stopping.abort();
      // Immediate while Redis is up; during an outage, until each connection has given up (createRedis).
      await Promise.all(connections.map(whenSettled));
      // Every step runs even if one before it failed: a step left out would keep its connection (and
      // the process) alive.
      for (const close of [...closers, () => ops.close(), () => closeRedis(redis)]) {
        await close().catch((error: unknown) =>
          log.warn({ err: error }, "a shutdown step failed; closing the rest"),
        );
      }
    },
  };
}
