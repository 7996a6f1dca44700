import { DelayedError, type Job, type Queue, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { type Config, type ResolvedTarget, resolveTarget } from "../core/config.ts";
import { ShipbotError, toShipbotError } from "../core/errors.ts";
import { type JobData, jobDataSchema } from "../core/model.ts";
import type { ExecutionContext, ExecutionResult, ExecutorPort, RolloutProgress } from "../executors/port.ts";
import type { StatusStore } from "../notify/status-store.ts";
import type { Keys } from "../queue/keys.ts";
import type { LeaseRequest, Leases } from "../queue/lease-scripts.ts";
import { toLeaseRequest } from "../queue/ops-queue.ts";

export interface OpWorkerOptions {
  connection: Redis;
  keys: Keys;
  config: Config;
  executor: ExecutorPort;
  status: StatusStore;
  leases: Leases;
  /** Used to wake the next job in a target's line. */
  queue: Queue;
  log: Logger;
  concurrency?: number;
  autorun?: boolean;
}

export interface OpOutcome {
  phase: "succeeded" | "cancelled" | "superseded";
  summary: string;
}

const verbs: Record<JobData["kind"], string> = {
  deploy: "Rolling out",
  rollback: "Rolling back",
  scale: "Scaling",
};

function progressText(kind: JobData["kind"], p: RolloutProgress): string {
  if (!p.observed) return `${verbs[kind]} · waiting for Kubernetes to pick up the change`;
  if (kind === "scale") return `Scaling · ${p.available}/${p.desired} available`;
  // Available counts old pods too while they drain, so it is shown as a count, not against the target.
  const old = p.total > p.updated ? ` · ${p.total - p.updated} old pending termination` : "";
  return `${verbs[kind]} · ${p.updated}/${p.desired} updated · ${p.available} available${old}`;
}

function doneText(kind: JobData["kind"], result: ExecutionResult, ms: number): string {
  const took = `${Math.max(1, Math.round(ms / 1000))}s`;
  const again = result.resumed ? " (finished after a worker restart; applied once)" : "";
  switch (kind) {
    case "deploy":
      return `Deployed ${result.image} in ${took}${again}`;
    case "rollback":
      return `Rolled back to ${result.image} (revision ${result.revision}) in ${took}${again}`;
    case "scale":
      return `Scaled to ${result.replicas} replicas in ${took}${again}`;
  }
}

async function wake(queue: Queue, jobId: string, log: Logger): Promise<void> {
  const job = await queue.getJob(jobId);
  if (!job) return;
  try {
    await job.promote();
  } catch (error) {
    // Not delayed (yet): it will look at its line again by itself within recheckMs.
    log.debug({ jobId, err: error }, "next job in line was not delayed; it will recheck on its own");
  }
}

function execute(
  executor: ExecutorPort,
  data: JobData,
  target: ResolvedTarget,
  ctx: ExecutionContext,
): Promise<ExecutionResult> {
  const where = { namespace: target.namespace, deployment: target.deployment, container: target.container };
  switch (data.kind) {
    case "deploy":
      if (!data.version) throw new UnrecoverableError("deploy job without a version");
      return executor.deploy(where, `${target.image}:${data.version}`, ctx);
    case "rollback":
      return executor.rollback(where, data.revision, ctx);
    case "scale":
      if (data.replicas === undefined) throw new UnrecoverableError("scale job without a replica count");
      return executor.scale(where, data.replicas, ctx);
  }
}

/**
 * Runs deploy, rollback and scale jobs. Per target, one at a time: a job that finds its target busy
 * joins the target's line, is parked as a delayed job and is woken when the holder finishes. While it
 * runs, a heartbeat keeps the lease; losing the lease aborts the executor so a stale worker stops.
 */
export function createOpWorker(options: OpWorkerOptions): Worker<JobData, OpOutcome> {
  const { config, executor, status, leases, queue, log } = options;
  const { leaseTtlMs, recheckMs, rolloutTimeoutMs, lockDurationMs } = config.queue;

  async function run(
    job: Job<JobData>,
    token: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<OpOutcome> {
    const jobId = job.id as string;
    const parsed = jobDataSchema.safeParse(job.data);
    if (!parsed.success) {
      log.error({ jobId, issues: parsed.error.issues }, "job data failed validation; dropping the job");
      throw new UnrecoverableError(`invalid job data: ${parsed.error.issues[0]?.message ?? "unknown"}`);
    }
    const data = parsed.data;
    const jlog = log.child({
      jobId,
      trace: data.traceId,
      kind: data.kind,
      service: data.service,
      env: data.env,
    });
    const target = resolveTarget(config, data.service, data.env);
    if (!target) {
      await status.emit(jobId, {
        phase: "failed",
        text: `${data.service} is no longer configured in ${data.env}; nothing was done`,
        data,
        finishedAt: Date.now(),
      });
      throw new UnrecoverableError("target no longer configured");
    }
    const request: LeaseRequest = toLeaseRequest(jobId, data);
    const lease = await leases.acquire(request, { ttlMs: leaseTtlMs, staleMs: recheckMs * 3 + 1_000 });

    if (lease.status === "cancelled" || lease.status === "superseded") {
      const text =
        lease.status === "cancelled"
          ? `Cancelled by ${lease.by}`
          : `Superseded by a newer deploy (${lease.by})`;
      await status.emit(jobId, { phase: lease.status, text, data, finishedAt: Date.now() });
      jlog.info({ by: lease.by }, `job ${lease.status}`);
      return { phase: lease.status, summary: text };
    }
    if (lease.status === "busy") {
      for (const victim of lease.superseded) await wake(queue, victim, jlog);
      const behind = lease.holder ? ` (behind ${lease.holder})` : "";
      await status.emit(jobId, {
        phase: "waiting",
        text: `Waiting · position ${lease.position} for ${data.service}/${data.env}${behind}`,
        data,
        position: lease.position,
      });
      await job.moveToDelayed(Date.now() + recheckMs, token);
      throw new DelayedError();
    }

    const fence = lease.fence;
    const controller = new AbortController();
    const signals = signal ? [controller.signal, signal] : [controller.signal];
    const heartbeat = setInterval(
      () => {
        leases.renew(request, fence, leaseTtlMs).then(
          (held) => {
            if (!held)
              controller.abort(
                new ShipbotError(
                  "conflict",
                  "lost the lease on this target; stopped to avoid a double apply",
                ),
              );
          },
          (error: unknown) => jlog.warn({ err: error }, "lease heartbeat failed; will try again"),
        );
      },
      Math.max(100, Math.floor(leaseTtlMs / 3)),
    );
    const timer = setTimeout(
      () =>
        controller.abort(
          new ShipbotError(
            "timeout",
            `gave up following the rollout after ${Math.round(rolloutTimeoutMs / 1000)}s`,
          ),
        ),
      rolloutTimeoutMs,
    );
    const startedAt = Date.now();
    let progressChain: Promise<unknown> = Promise.resolve();
    try {
      await status.emit(jobId, { phase: "running", text: verbs[data.kind], data, startedAt }, ["position"]);
      jlog.info({ fence, attempt: job.attemptsStarted }, "operation started");
      const result = await execute(executor, data, target, {
        jobId,
        fence,
        signal: AbortSignal.any(signals),
        onProgress(progress) {
          // Serialised so the store sees progress in order; a failed write only loses a tick.
          progressChain = progressChain
            .then(() =>
              status.emit(jobId, {
                phase: "progress",
                text: progressText(data.kind, progress),
                data,
                progress: {
                  updated: progress.updated,
                  available: progress.available,
                  desired: progress.desired,
                },
              }),
            )
            .catch((error: unknown) => jlog.warn({ err: error }, "could not record progress"));
        },
      });
      await progressChain;
      const finishedAt = Date.now();
      const summary = doneText(data.kind, result, finishedAt - startedAt);
      await status.emit(jobId, {
        phase: "succeeded",
        text: summary,
        data,
        fromImage: result.previousImage,
        toImage: result.image,
        finishedAt,
      });
      jlog.info({ resumed: result.resumed, image: result.image }, "operation succeeded");
      return { phase: "succeeded", summary };
    } catch (caught) {
      await progressChain;
      const reason = controller.signal.aborted ? controller.signal.reason : caught;
      const error = toShipbotError(reason);
      const last = !error.retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      jlog.warn({ err: caught, code: error.code, last }, "operation failed");
      if (last) {
        await status.emit(jobId, {
          phase: "failed",
          text: `Failed: ${error.message}`,
          data,
          finishedAt: Date.now(),
        });
        throw new UnrecoverableError(error.message);
      }
      await status.emit(jobId, { phase: "running", text: `Retrying after: ${error.message}`, data });
      throw error;
    } finally {
      clearInterval(heartbeat);
      clearTimeout(timer);
      const next = await leases.release(request, fence);
      if (next && next !== jobId) await wake(queue, next, jlog);
    }
  }

  const worker = new Worker<JobData, OpOutcome>(
    options.keys.opsQueue,
    (job, token, signal) => run(job, token, signal),
    {
      connection: options.connection,
      prefix: options.keys.prefix,
      concurrency: options.concurrency ?? config.queue.concurrency,
      lockDuration: lockDurationMs,
      stalledInterval: Math.max(1_000, Math.floor(lockDurationMs / 2)),
      maxStalledCount: 2,
      autorun: options.autorun ?? true,
    },
  );
  worker.on("error", (error) => log.error({ err: error }, "operations worker error"));
  return worker;
}
