import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { Packr } from "msgpackr";

/** The options every operations job carries (see `toJob` in ops-queue.ts). */
export interface OpJobOptions {
  jobId: string;
  priority: number;
  attempts: number;
  backoff: { type: "exponential" | "fixed"; delay: number };
}

export interface OpJob {
  name: string;
  data: unknown;
  opts: OpJobOptions;
}

export interface JobWriter {
  /** Adds one job; an id that exists already is left as it is (BullMQ's own rule). */
  add(job: OpJob): Promise<void>;
  /** Whether jobs go straight to BullMQ's add script (false: through `Queue.add`). */
  readonly direct: boolean;
}

/** Packs exactly as BullMQ's Redis backend does (undefined as nil, no msgpackr records). */
const packer = new Packr({ useRecords: false, encodeUndefinedAsNil: true });

/** What the add scripts answer below zero: BullMQ's error codes for an add. */
function toAddError(code: number): Error {
  return new Error(`the queue refused the job (BullMQ add error ${code})`);
}

type ScriptCall = (args: Array<string | Buffer>) => Promise<unknown>;

/**
 * Finds BullMQ's versioned add script on the connection, as its Queue registered it
 * (`addPrioritizedJob:<version>`). Undefined when there is none or more than one version.
 */
function findScript(redis: Redis, name: string): ScriptCall | undefined {
  const scripts = (redis as unknown as { scriptsSet?: Record<string, unknown> }).scriptsSet ?? {};
  const found = Object.keys(scripts).filter((key) => key.startsWith(`${name}:`));
  if (found.length !== 1 || found[0] === undefined) return undefined;
  const command = (redis as unknown as Record<string, ScriptCall | undefined>)[found[0]];
  return typeof command === "function" ? command.bind(redis) : undefined;
}

/**
 * Holds a standalone connection's writes back until the current burst of commands is written, so
 * several commands leave in one system call: at most `batch` commands, and never past the current tick
 * (they are released when the microtasks that issued them are done). Each write to a socket costs the
 * producer a system call and, on loopback, the kernel's delivery to Redis; this is most of what a queue
 * write costs the producer. Nothing waits longer than the code that issued it is already running.
 */
export function createWriteCoalescer(redis: Redis, batch: number): () => void {
  if ((redis as unknown as { isCluster?: boolean }).isCluster === true || batch <= 1) return () => undefined;
  let held: { uncork(): void } | undefined;
  let count = 0;
  const release = () => {
    const stream = held;
    held = undefined;
    stream?.uncork();
  };
  return () => {
    if (held !== undefined && count >= batch) release();
    if (held === undefined) {
      const stream = (redis as unknown as { stream?: { cork?(): void; uncork(): void } }).stream;
      if (redis.status !== "ready" || typeof stream?.cork !== "function") return;
      stream.cork();
      held = stream;
      count = 0;
      process.nextTick(release);
    }
    count++;
  };
}

/**
 * Adds operations jobs through BullMQ's own add script, called directly. `Queue.add` spends most of its
 * producer CPU on what shipbot's jobs do not use: a `Job` object per add (with its own option merging
 * and validation), the telemetry wrapper, a proxy around the connection, key lists built per call. This
 * sends the same script the same arguments (the contract test in test/integration/job-writer.test.ts
 * compares the stored job, its place in the queue and its events with `Queue.add`'s), so workers,
 * events, the deriver and the dashboard see exactly what they saw before.
 *
 * Falls back to `Queue.add` when the scripts cannot be found on the connection (another BullMQ
 * version's naming) or when traces are on (`Queue.add` then carries the trace context in the job).
 */
export function createJobWriter(
  queue: Queue,
  redis: Redis,
  options: { traced: boolean; batch?: number },
): JobWriter {
  const viaQueue: JobWriter = {
    direct: false,
    async add(job) {
      await queue.add(job.name, job.data, job.opts);
    },
  };
  if (options.traced) return viaQueue;
  const keys = queue.keys;
  const prefix = keys[""] ?? "";
  const prioritizedKeys = [
    keys.marker,
    keys.meta,
    keys.id,
    keys.prioritized,
    keys.delayed,
    keys.completed,
    keys.active,
    keys.events,
    keys.pc,
  ].map(String);
  const standardKeys = [
    keys.wait,
    keys.paused,
    keys.meta,
    keys.id,
    keys.completed,
    keys.delayed,
    keys.active,
    keys.events,
    keys.marker,
  ].map(String);
  const hold = createWriteCoalescer(redis, options.batch ?? 16);
  let scripts: { prioritized: ScriptCall; standard: ScriptCall } | undefined | null;

  const resolveScripts = () => {
    if (scripts === undefined) {
      const prioritized = findScript(redis, "addPrioritizedJob");
      const standard = findScript(redis, "addStandardJob");
      scripts = prioritized && standard ? { prioritized, standard } : null;
    }
    return scripts;
  };

  return {
    get direct() {
      return resolveScripts() !== null;
    },
    async add(job) {
      // The scripts are registered once BullMQ's Queue has its connection.
      if (scripts === undefined) await queue.waitUntilReady();
      const found = resolveScripts();
      if (found === null || found === undefined) return viaQueue.add(job);
      const { opts } = job;
      // As BullMQ's addJobToTransaction: the queue's key prefix, id, name, timestamp, then no parent,
      // no repeat, no deduplication.
      const args: Array<string | Buffer> = (opts.priority > 0 ? prioritizedKeys : standardKeys).slice();
      args.push(
        packer.pack([prefix, opts.jobId, job.name, Date.now(), null, null, undefined, undefined, null, null]),
        JSON.stringify(job.data),
        packer.pack(
          opts.priority > 0
            ? { attempts: opts.attempts, jobId: opts.jobId, priority: opts.priority, backoff: opts.backoff }
            : { attempts: opts.attempts, jobId: opts.jobId, backoff: opts.backoff },
        ),
      );
      hold();
      const reply = await (opts.priority > 0 ? found.prioritized : found.standard)(args);
      if (typeof reply === "number" && reply < 0) throw toAddError(reply);
    },
  };
}
