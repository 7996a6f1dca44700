import type { Queue } from "bullmq";
import type { Redis } from "ioredis";

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

/** MessagePack's header for a string of `bytes` UTF-8 bytes. */
function strHeader(bytes: number): number[] {
  if (bytes < 32) return [0xa0 | bytes];
  if (bytes < 0x100) return [0xd9, bytes];
  if (bytes < 0x10000) return [0xda, bytes >> 8, bytes & 0xff];
  return [0xdb, (bytes >>> 24) & 0xff, (bytes >> 16) & 0xff, (bytes >> 8) & 0xff, bytes & 0xff];
}

/** A string as MessagePack. */
function packStr(text: string): Buffer {
  const bytes = Buffer.byteLength(text);
  const header = strHeader(bytes);
  const out = Buffer.allocUnsafe(header.length + bytes);
  out.set(header);
  out.write(text, header.length, "utf8");
  return out;
}

/**
 * The two MessagePack arguments of BullMQ's add scripts for shipbot's jobs, written directly: the same
 * bytes BullMQ's packer (msgpackr, undefined as nil) produces for them, at a fraction of its cost per
 * job. Only the job id and the timestamp change from job to job; everything else is made once.
 *
 * - args: [queue key prefix, job id, name, timestamp, then six nils: no parent, no parent
 *   dependencies, no parent object, no repeat key, no deduplication key, no deferred parent release];
 * - opts: { attempts, jobId, priority, backoff: { type, delay } } (priority left out when 0).
 */
export function createJobPacker(prefix: string) {
  const head = Buffer.concat([Buffer.from([0x9a]), packStr(prefix)]);
  const names = new Map<string, Buffer>();
  const key = (name: string) => packStr(name);
  const [attemptsKey, jobIdKey, priorityKey, backoffKey, typeKey, delayKey] = [
    "attempts",
    "jobId",
    "priority",
    "backoff",
    "type",
    "delay",
  ].map(key) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  const uint = (n: number): Buffer => {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cannot pack ${n} as a count`);
    if (n < 0x80) return Buffer.from([n]);
    if (n < 0x100) return Buffer.from([0xcc, n]);
    if (n < 0x10000) return Buffer.from([0xcd, n >> 8, n & 0xff]);
    const out = Buffer.allocUnsafe(5);
    out[0] = 0xce;
    out.writeUInt32BE(n, 1);
    return out;
  };
  const map = (entries: number) => Buffer.from([0xde, 0, entries]);
  const optsParts = new Map<string, { before: Buffer; after: Buffer }>();
  return {
    args(jobId: string, name: string, timestamp: number): Buffer {
      let packedName = names.get(name);
      if (packedName === undefined) {
        packedName = packStr(name);
        names.set(name, packedName);
      }
      const id = Buffer.byteLength(jobId);
      const idHeader = strHeader(id);
      // As msgpackr: a whole number below 2^32 as an unsigned integer, anything else (every real
      // millisecond timestamp) as a float64.
      const small = Number.isInteger(timestamp) && timestamp >= 0 && timestamp <= 0xffffffff;
      const time = small ? uint(timestamp) : undefined;
      const timeBytes = time ? time.length : 9;
      const out = Buffer.allocUnsafe(head.length + idHeader.length + id + packedName.length + timeBytes + 6);
      let at = head.copy(out, 0);
      out.set(idHeader, at);
      at += idHeader.length;
      at += out.write(jobId, at, "utf8");
      at += packedName.copy(out, at);
      if (time) at += time.copy(out, at);
      else {
        out[at] = 0xcb;
        out.writeDoubleBE(timestamp, at + 1);
        at += 9;
      }
      out.fill(0xc0, at);
      return out;
    },
    opts(opts: OpJobOptions): Buffer {
      const shape = `${opts.attempts}|${opts.priority}|${opts.backoff.type}|${opts.backoff.delay}`;
      let parts = optsParts.get(shape);
      if (parts === undefined) {
        const withPriority = opts.priority > 0;
        parts = {
          before: Buffer.concat([map(withPriority ? 4 : 3), attemptsKey, uint(opts.attempts), jobIdKey]),
          after: Buffer.concat([
            ...(withPriority ? [priorityKey, uint(opts.priority)] : []),
            backoffKey,
            map(2),
            typeKey,
            packStr(opts.backoff.type),
            delayKey,
            uint(opts.backoff.delay),
          ]),
        };
        optsParts.set(shape, parts);
      }
      return Buffer.concat([parts.before, packStr(opts.jobId), parts.after]);
    },
  };
}

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
  const pack = createJobPacker(prefix);
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
      args.push(pack.args(opts.jobId, job.name, Date.now()), JSON.stringify(job.data), pack.opts(opts));
      hold();
      const reply = await (opts.priority > 0 ? found.prioritized : found.standard)(args);
      if (typeof reply === "number" && reply < 0) throw toAddError(reply);
    },
  };
}
