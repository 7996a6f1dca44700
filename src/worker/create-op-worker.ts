import { DelayedError, type Job, type Queue, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { type Config, type ResolvedTarget, resolveTarget } from "../core/config.ts";
import { ShipbotError, toShipbotError } from "../core/errors.ts";
import { activeFreeze, describeFreeze } from "../core/freeze-windows.ts";
import { type JobData, jobDataSchema } from "../core/model.ts";
import type { ExecutionContext, ExecutionResult, ExecutorPort, RolloutProgress } from "../executors/port.ts";
import {
  checkRequired,
  findDeploymentByImage,
  type GitHubClient,
  type RepoRef,
  type ResolvedRef,
  recordDeployment,
  resolveRef,
  startDeployment,
  toRepoRef,
} from "../github/index.ts";
import type { StatusStore } from "../notify/status-store.ts";
import type { Metrics } from "../observability/metrics.ts";
import { inSpan, type Tracing } from "../observability/tracing.ts";
import type { Keys } from "../queue/keys.ts";
import type { LeaseRequest, Leases } from "../queue/lease-scripts.ts";
import { toLeaseRequest, wakeJob } from "../queue/ops-queue.ts";
import { installAcquireOnFetch } from "./acquire-on-fetch.ts";

export interface OpWorkerOptions {
  /**
   * The worker's own connection, used by nothing else: its fetch commands are replaced by ones that
   * also take the job's lease (see acquire-on-fetch.ts).
   */
  connection: Redis;
  keys: Keys;
  config: Config;
  executor: ExecutorPort;
  status: StatusStore;
  leases: Leases;
  /** Used to wake jobs that were superseded while waiting, so their cards say so at once. */
  queue: Queue;
  log: Logger;
  concurrency?: number;
  autorun?: boolean;
  /** Counts operations that had to wait for a busy target (in process memory, no I/O). */
  metrics?: Pick<Metrics, "leaseWaits">;
  /** For services with `github` in the config: refs become commits, checks are enforced, deploys recorded. */
  github?: GitHubClient;
  /** Traces, when configured: BullMQ carries the context from the queue write, spans wrap the executor. */
  tracing?: Pick<Tracing, "tracer" | "bullmq">;
}

/**
 * What a job returns. BullMQ stores it with the finished job and puts it in the queue's event stream,
 * where the deriver turns it into the job's final state, audit entry and history: the worker itself
 * spends no round trip on finishing.
 */
export interface OpOutcome {
  phase: "succeeded" | "cancelled" | "superseded";
  text: string;
  fromImage?: string;
  toImage?: string;
  finishedAt: number;
  /** deploy with GitHub: the commit and when it was committed (ms), for the ledger's lead time. */
  sha?: string;
  committedAt?: number;
}

/** What GitHub said about the commit a deploy shipped, carried to the job's return value. */
interface DeployedCommit {
  sha?: string;
  committedAt?: number;
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

/**
 * The commit a deploy runs. An approved request pinned the commit its approvers saw (`pinned`). The
 * version is resolved as typed, because its kind makes the image tag (`{tag}` needs a git tag, `{ref}`
 * names the branch): resolving the pinned sha instead made every tag-templated service fail after
 * approval. While the version still names the approved commit, that is the one; once it has moved on, an
 * image tag made from the commit alone (`{sha}`, `{sha7}`) still names the approved build, but one made
 * from the name (`{tag}`, `{ref}`) would now run code nobody approved, so the job stops.
 */
async function resolveApproved(
  client: GitHubClient,
  repo: RepoRef,
  version: string,
  pinned: string | undefined,
  imageTagTemplate: string,
  signal: AbortSignal,
): Promise<ResolvedRef> {
  const resolved = await resolveRef(client, repo, version, { imageTagTemplate, signal });
  if (pinned === undefined || resolved.sha.toLowerCase() === pinned.toLowerCase()) return resolved;
  if (!/\{(?:tag|ref)\}/.test(imageTagTemplate))
    return resolveRef(client, repo, pinned, { imageTagTemplate, signal });
  throw new ShipbotError(
    "conflict",
    `\`${version}\` moved since it was approved (approved ${pinned.slice(0, 7)}, now ${resolved.shortSha}), and this service's image tag is made from the name, so it would run the new commit; nothing was deployed: ask again to deploy the new commit`,
    { retryable: false },
  );
}

async function execute(
  executor: ExecutorPort,
  data: JobData,
  target: ResolvedTarget,
  ctx: ExecutionContext,
  github:
    | { client: GitHubClient; settings: NonNullable<Config["services"][string]["github"]>; log: Logger }
    | undefined,
  commit: DeployedCommit = {},
): Promise<ExecutionResult> {
  const where = { namespace: target.namespace, deployment: target.deployment, container: target.container };
  switch (data.kind) {
    case "deploy": {
      if (!data.version) throw new UnrecoverableError("deploy job without a version");
      if (!github) return executor.deploy(where, `${target.image}:${data.version}`, ctx);
      // The version names code: resolve it (or take the commit fixed at approval), insist on green
      // checks, and record the deploy where the team looks, never leaving the record in progress.
      const repo = toRepoRef(github.settings.repo);
      const resolved = await resolveApproved(
        github.client,
        repo,
        data.version,
        data.sha,
        github.settings.imageTag,
        ctx.signal,
      );
      await checkRequired(github.client, repo, resolved.sha, {
        required: github.settings.requiredChecks,
        force: data.force === true,
        signal: ctx.signal,
      });
      commit.sha = resolved.sha;
      const committedAt = Date.parse(resolved.committedAt);
      if (Number.isFinite(committedAt)) commit.committedAt = committedAt;
      const image = `${target.image}:${resolved.imageTag}`;
      if (!github.settings.deployments) return executor.deploy(where, image, ctx);
      return recordDeployment(
        github.client,
        {
          repo,
          sha: resolved.sha,
          ref: data.version,
          environment: data.env,
          jobId: ctx.jobId,
          payload: { image },
          log: github.log,
          signal: ctx.signal,
        },
        () => executor.deploy(where, image, ctx),
      );
    }
    case "rollback": {
      const result = await executor.rollback(where, data.revision, ctx);
      if (github?.settings.deployments) await recordRollback(github, data, ctx, result);
      return result;
    }
    case "scale":
      if (data.replicas === undefined) throw new UnrecoverableError("scale job without a replica count");
      return executor.scale(where, data.replicas, ctx);
  }
}

/**
 * A rollback is recorded as a deployment of the commit that image came from, marking the others
 * inactive as GitHub expects. The rollback itself already happened: a GitHub failure here is logged,
 * never turned into a failed rollback.
 */
async function recordRollback(
  github: { client: GitHubClient; settings: NonNullable<Config["services"][string]["github"]>; log: Logger },
  data: JobData,
  ctx: ExecutionContext,
  result: ExecutionResult,
): Promise<void> {
  try {
    const repo = toRepoRef(github.settings.repo);
    const found = await findDeploymentByImage(github.client, repo, data.env, result.image, {
      signal: ctx.signal,
    });
    if (!found) return;
    const deployment = await startDeployment(github.client, {
      repo,
      sha: found.sha,
      ref: found.ref,
      environment: data.env,
      jobId: ctx.jobId,
      payload: { image: result.image },
      rollback: true,
      signal: ctx.signal,
    });
    await deployment.succeed();
  } catch (error) {
    github.log.warn({ jobId: ctx.jobId, err: error }, "rolled back, but could not record it on GitHub");
  }
}

/**
 * Runs deploy, rollback and scale jobs. Per target, one at a time: a job that finds its target busy
 * joins the target's line, is parked as a delayed job and is woken when the holder finishes. The
 * worker adds no round trip to BullMQ's own: the script that fetches a job also runs the acquire for
 * it, which records the job as running (or waiting). Progress is written only while a real rollout
 * moves.
 */
export function createOpWorker(options: OpWorkerOptions): Worker<JobData, OpOutcome> {
  const { config, executor, status, leases, queue, log } = options;
  const { recheckMs, rolloutTimeoutMs, lockDurationMs } = config.queue;
  const staleMs = recheckMs * 3 + 1_000;
  const fetched = installAcquireOnFetch(options.connection, {
    keys: options.keys,
    config,
    staleMs,
    runningText: verbs,
  });

  let warnedSeparate = false;

  /** The acquire script on its own; scheduled freeze windows are config, evaluated here and handed to it. */
  async function acquire(request: LeaseRequest, data: JobData, attemptsStarted: number) {
    const frozen = data.kind === "rollback" ? undefined : activeFreeze(config, data.env, Date.now());
    return leases.acquire(request, {
      staleMs,
      runningText: verbs[data.kind],
      requester: data.requestedBy.id,
      fresh: attemptsStarted <= 1,
      ...(frozen ? { scheduledFreeze: describeFreeze(frozen, data.env) } : {}),
    });
  }

  async function run(
    job: Job<JobData>,
    token: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<OpOutcome> {
    const jobId = job.id as string;
    const taken = fetched.take(jobId, job.attemptsStarted);
    const parsed = jobDataSchema.safeParse(job.data);
    if (!parsed.success) {
      log.error({ jobId, issues: parsed.error.issues }, "job data failed validation; dropping the job");
      throw new UnrecoverableError(`invalid job data: ${parsed.error.issues[0]?.message ?? "unknown"}`);
    }
    const data = parsed.data;
    const target = resolveTarget(config, data.service, data.env);
    if (!target)
      throw new UnrecoverableError(
        `${data.service} is no longer configured in ${data.env}; nothing was done`,
      );

    // Normally taken with the job by the fetch (acquire-on-fetch.ts); acquired here for a job the fetch
    // left alone.
    if (taken === undefined && !warnedSeparate) {
      // Correct either way, but each such job costs a round trip more: say so once.
      warnedSeparate = true;
      log.warn({ jobId }, "the fetch did not take this job's lease; acquiring it separately (logged once)");
    }
    const lease = taken ?? (await acquire(toLeaseRequest(jobId, data), data, job.attemptsStarted));
    if (lease.status === "cancelled" || lease.status === "superseded") {
      const text =
        lease.status === "cancelled"
          ? `Cancelled by ${lease.by}`
          : `Superseded by a newer deploy (${lease.by})`;
      return { phase: lease.status, text, finishedAt: Date.now() };
    }
    if (lease.status === "busy" || lease.status === "blocked") {
      // Once per job: a parked job comes back here on every recheck, each a new start of the job.
      if (lease.status === "busy" && job.attemptsStarted <= 1)
        options.metrics?.leaseWaits.inc({ env: data.env });
      if (lease.status === "busy") for (const victim of lease.superseded) await wakeJob(queue, victim, log);
      await job.moveToDelayed(Date.now() + recheckMs, token);
      throw new DelayedError();
    }

    const startedAt = Date.now();
    const deadline = startedAt + rolloutTimeoutMs;
    // Built when the executor first asks for it (a real one does at once; a no-op never does): the
    // timeout and the combined signal cost timers and weak references on every job otherwise.
    let timeout: AbortSignal | undefined;
    let combined: AbortSignal | undefined;
    const executionSignal = (): AbortSignal => {
      if (!combined) {
        timeout = AbortSignal.timeout(Math.max(0, deadline - Date.now()));
        combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      }
      return combined;
    };
    let progressChain: Promise<unknown> = Promise.resolve();
    const commit: DeployedCommit = {};
    try {
      const githubSettings = config.services[data.service]?.github;
      const github =
        options.github && githubSettings
          ? { client: options.github, settings: githubSettings, log }
          : undefined;
      const result = await inSpan(
        options.tracing?.tracer,
        `k8s.${data.kind}`,
        { "shipbot.job": jobId, "shipbot.service": data.service, "shipbot.env": data.env },
        () =>
          execute(
            executor,
            data,
            target,
            {
              jobId,
              fence: lease.fence,
              firstFence: lease.firstFence,
              get signal() {
                return executionSignal();
              },
              onProgress(progress) {
                // Serialised so the store sees progress in order; a failed write only loses a tick.
                progressChain = progressChain
                  .then(() =>
                    status.emit(
                      jobId,
                      {
                        phase: "progress",
                        text: progressText(data.kind, progress),
                        progress: {
                          updated: progress.updated,
                          available: progress.available,
                          desired: progress.desired,
                        },
                      },
                      ["position"],
                    ),
                  )
                  .catch((error: unknown) => log.warn({ jobId, err: error }, "could not record progress"));
              },
            },
            github,
            commit,
          ),
      );
      await progressChain;
      const finishedAt = Date.now();
      return {
        phase: "succeeded",
        text: doneText(data.kind, result, finishedAt - startedAt),
        fromImage: result.previousImage,
        toImage: result.image,
        finishedAt,
        ...(commit.sha && commit.committedAt !== undefined
          ? { sha: commit.sha, committedAt: commit.committedAt }
          : {}),
      };
    } catch (caught) {
      await progressChain;
      const timedOut = timeout ? timeout.aborted : Date.now() >= deadline;
      const reason = timedOut
        ? new ShipbotError(
            "timeout",
            `gave up following the rollout after ${Math.round(rolloutTimeoutMs / 1000)}s`,
          )
        : signal?.aborted
          ? signal.reason
          : caught;
      const error = toShipbotError(reason);
      const last = !error.retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.warn({ jobId, trace: data.traceId, err: caught, code: error.code, last }, "operation failed");
      // The failure reason becomes the card's final line (the deriver reads it from the event).
      if (last) throw new UnrecoverableError(error.message);
      await status.emit(jobId, { phase: "running", text: `Retrying after: ${error.message}` });
      throw error;
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
      // No retention here: BullMQ keeps every finished job, and src/queue/retention.ts trims them once a
      // minute (BullMQ's would read and trim the finished set in the script that finishes each job).
      autorun: options.autorun ?? true,
      ...(options.tracing ? { telemetry: options.tracing.bullmq } : {}),
    },
  );
  worker.on("error", (error) => log.error({ err: error }, "operations worker error"));
  // A worker that could not renew its lock may already be replaced by another: stop its executor so
  // the two never write to the same target (the fencing token guards the write as well).
  worker.on("lockRenewalFailed", (jobIds: string[]) => {
    for (const id of jobIds) {
      log.warn({ jobId: id }, "lost the job's lock; stopping its operation");
      worker.cancelJob(id, "lost the job's lock to another worker");
    }
  });
  return worker;
}
