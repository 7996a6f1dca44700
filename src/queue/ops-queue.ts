import { type Job, Queue, type Telemetry } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { JobSpec } from "../core/command-module.ts";
import { ShipbotError } from "../core/errors.ts";
import { type ChatCommand, type JobData, type JobState, jobPriority, terminalPhases } from "../core/model.ts";
import type { StatusStore } from "../notify/status-store.ts";
import { createJobWriter } from "./create-job-writer.ts";
import { createBatchId, createJobId } from "./job-id.ts";
import type { Keys } from "./keys.ts";
import { createLeases, firstHeld, heldKey, type LeaseRequest, type Leases } from "./lease-scripts.ts";
import { toQueueUnavailable } from "./redis.ts";

/** Events kept in the operations queue's stream (about 200 bytes each). */
export const opsEventsMaxLength = 200_000;

/** How many times an operation is tried when the failure is worth retrying (network, 5xx). */
export const opAttempts = 3;

export interface Enqueued {
  jobId: string;
  data: JobData;
}

/** What a batch's card says about the whole fan-out; its counters live beside it in the batch hash. */
export interface BatchMeta {
  kind: JobData["kind"];
  env: string;
  version?: string;
  total: number;
  /** Listed on the card when there are few. */
  services: string[];
  conversation: JobData["conversation"];
  requestedBy: string;
  traceId: string;
  /** Services `*` left out because the requester may not operate them (the first few, and how many). */
  skipped?: { count: number; names: string[] };
}

/** Services listed by name on a batch card; beyond this the card gives counts only. */
const batchServicesListed = 10;

/** Kept as long as the jobs' states, so a late card edit still finds its batch. */
const batchTtlMs = 7 * 24 * 3600 * 1000;

export interface OpsQueue {
  queue: Queue;
  leases: Leases;
  /**
   * Queues a command's jobs in one round trip, ids from the command's event id. Several jobs are a
   * fan-out: they share a batch whose one card replaces theirs.
   */
  /** `skipped`: services `*` left out, for the batch card. */
  enqueue(specs: JobSpec[], command: ChatCommand, traceId: string, skipped?: string[]): Promise<Enqueued[]>;
  /** Queues a job whose id and payload already exist (an approved request). Idempotent by id. */
  enqueueData(jobId: string, data: JobData): Promise<void>;
  /** Cancels a job that has not started. Returns the job's data for the caller's permission check first. */
  find(jobId: string): Promise<JobData | undefined>;
  cancel(jobId: string, by: string): Promise<"cancelled" | "pending-cancel">;
  /** Wakes the first job waiting for a target and the first one a guard held (after an unlock or unfreeze). */
  wakeLine(service: string, env: string): Promise<void>;
  /** Running and waiting operations, oldest first. */
  list(): Promise<JobState[]>;
  close(): Promise<void>;
}

export function toLeaseRequest(jobId: string, data: JobData): LeaseRequest {
  return {
    jobId,
    service: data.service,
    env: data.env,
    kind: data.kind,
    requestedAt: data.requestedAt,
    priority: jobPriority[data.kind],
  };
}

function isConnectionError(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /Stream isn't writeable|ECONNREFUSED|Connection is closed|ETIMEDOUT|ENOTFOUND|MaxRetriesPerRequest|ECONNRESET/i.test(
    message,
  );
}

/**
 * Wakes a job parked with a delay (waiting for its target) so it looks at its line now. A job that is not
 * delayed at this moment needs no waking: it rechecks its line by itself within recheckMs.
 */
export async function wakeJob(queue: Queue, jobId: string, log?: Pick<Logger, "debug">): Promise<void> {
  try {
    const job = await queue.getJob(jobId);
    await job?.promote();
  } catch (error) {
    log?.debug({ jobId, err: error }, "job to wake was not delayed; it rechecks on its own");
  }
}

/** The job payload for each spec: what the worker needs, no secrets, no blobs. */
export function toJobData(spec: JobSpec, command: ChatCommand, traceId: string): JobData {
  // Optional fields assigned, not spread: this runs once per job on the accept path.
  const data: JobData = {
    kind: spec.kind,
    service: spec.target.service,
    env: spec.target.env,
    requestedBy: { id: command.user.id, name: command.user.name },
    conversation: command.conversation,
    commandId: command.id,
    requestedAt: command.receivedAt,
    traceId,
  };
  if (spec.version !== undefined) data.version = spec.version;
  if (spec.force === true) data.force = true;
  if (spec.breakGlass !== undefined) data.breakGlass = spec.breakGlass;
  if (spec.revision !== undefined) data.revision = spec.revision;
  if (spec.replicas !== undefined) data.replicas = spec.replicas;
  return data;
}

/** The same for every job, so made once; BullMQ copies a job's options and only reads these. */
const retryBackoff = { type: "exponential", delay: 2_000 } as const;

/** An operation job's BullMQ options (the benchmarks give raw jobs the same). */
export function opJobOptions(jobId: string, kind: JobData["kind"]) {
  return { jobId, priority: jobPriority[kind], attempts: opAttempts, backoff: retryBackoff };
}

function toJob(jobId: string, data: JobData) {
  return { name: `k8s.${data.kind}`, data, opts: opJobOptions(jobId, data.kind) };
}

function toJobs(specs: JobSpec[], command: ChatCommand, traceId: string, batch?: string) {
  return specs.map((spec, index) => {
    const data = toJobData(spec, command, traceId);
    if (batch !== undefined) data.batch = batch;
    return toJob(createJobId(command.conversation.platform, command.id, index), data);
  });
}

function toBatchMeta(
  specs: JobSpec[],
  command: ChatCommand,
  traceId: string,
  skipped: string[] | undefined,
): BatchMeta {
  const first = specs[0];
  return {
    kind: first?.kind ?? "deploy",
    env: first?.target.env ?? "",
    ...(first?.version === undefined ? {} : { version: first.version }),
    total: specs.length,
    services: specs.length <= batchServicesListed ? specs.map((s) => s.target.service) : [],
    conversation: command.conversation,
    requestedBy: command.user.name,
    traceId,
    ...(skipped?.length
      ? { skipped: { count: skipped.length, names: skipped.slice(0, batchServicesListed) } }
      : {}),
  };
}

export function createOpsQueue(
  redis: Redis,
  keys: Keys,
  status: StatusStore,
  log?: Logger,
  telemetry?: Telemetry,
): OpsQueue {
  // The event stream is where the deriver learns about new and finished jobs: keep enough of it that a
  // slow or restarting deriver still finds every event (a sweep covers anything trimmed regardless).
  const queue = new Queue(keys.opsQueue, {
    connection: redis,
    prefix: keys.prefix,
    streams: { events: { maxLen: opsEventsMaxLength } },
    ...(telemetry ? { telemetry } : {}),
  });
  queue.on("error", () => undefined);
  const leases = createLeases(redis, keys);
  const writer = createJobWriter(queue, redis, { traced: telemetry !== undefined });

  return {
    queue,
    leases,
    async enqueue(specs, command, traceId, skipped) {
      const batch = specs.length > 1 ? createBatchId(command.conversation.platform, command.id) : undefined;
      const jobs = toJobs(specs, command, traceId, batch);
      // Refuse at once while disconnected: BullMQ would otherwise wait for the connection, and a
      // person would get silence instead of "nothing was done".
      if (redis.status !== "ready")
        throw toQueueUnavailable(new Error(`redis connection is ${redis.status}`));
      try {
        if (jobs.length === 1 && jobs[0]) await writer.add(jobs[0]);
        else {
          if (batch !== undefined) {
            // Before the jobs, so their first transitions find it. NX: a redelivered command keeps the
            // batch (and counters) it already has.
            await redis
              .multi()
              .hsetnx(
                keys.batch(batch),
                "meta",
                JSON.stringify(toBatchMeta(specs, command, traceId, skipped)),
              )
              .pexpire(keys.batch(batch), batchTtlMs)
              .exec();
          }
          // BullMQ's add script, 50 jobs a call, every call sent at once: one round trip. Existing ids
          // are skipped, so a redelivery of the command creates nothing twice.
          await writer.addMany(jobs);
        }
      } catch (error) {
        if (isConnectionError(error)) throw toQueueUnavailable(error);
        throw error;
      }
      // The job is the durable record of an accepted command: its first card state, audit entry and
      // history are derived from BullMQ's "added" event, off this path.
      const enqueued = jobs.map((j) => ({ jobId: j.opts.jobId, data: j.data }));
      return enqueued;
    },
    async enqueueData(jobId, data) {
      await writer.add(toJob(jobId, data));
    },
    async find(jobId) {
      const job = (await queue.getJob(jobId)) as Job<JobData> | undefined;
      return job?.data;
    },
    async cancel(jobId, by) {
      const job = (await queue.getJob(jobId)) as Job<JobData> | undefined;
      if (!job)
        throw new ShipbotError("not_found", `no job ${jobId}; it may have finished and been cleaned up`);
      const outcome = await leases.cancel(toLeaseRequest(jobId, job.data), by);
      if (outcome === "running") {
        throw new ShipbotError(
          "conflict",
          `job ${jobId} is already running and cannot be cancelled; roll back once it finishes`,
        );
      }
      if (outcome !== "cancelled")
        throw new ShipbotError("conflict", `job ${jobId} already ended (${outcome})`);
      try {
        await job.remove();
        await leases.clearMark(jobId);
      } catch (error) {
        // Being picked up right now: the mark makes the worker drop it.
        log?.debug({ jobId, err: error }, "cancelled job could not be removed; the worker will drop it");
        return "pending-cancel";
      }
      return "cancelled";
    },
    async wakeLine(service, env) {
      const [[head], held] = await Promise.all([
        redis.zrange(keys.line(service, env), "0", "0"),
        redis.hgetall(heldKey(keys, service, env)),
      ]);
      // The line's head, and the first of the jobs the guard held: others wait for it once the guard has
      // lifted (see the acquire), so it looks again now rather than at its next recheck.
      const woken = new Set([head?.split("|")[2], firstHeld(held)]);
      for (const jobId of woken) if (jobId) await wakeJob(queue, jobId, log);
    },
    async list() {
      const jobs = (await queue.getJobs(
        ["active", "waiting", "prioritized", "delayed"],
        0,
        199,
        true,
      )) as Array<Job<JobData> | undefined>;
      const states = await Promise.all(
        jobs.filter((j): j is Job<JobData> => j?.id !== undefined).map((j) => status.read(j.id as string)),
      );
      return states
        .filter((s): s is JobState => s !== undefined && !terminalPhases.has(s.phase))
        .sort((a, b) => a.data.requestedAt - b.data.requestedAt);
    },
    async close() {
      await queue.close();
    },
  };
}
