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
  /** Adds many jobs at once (a fan-out), in calls of `bulkBatch`, all sent together. */
  addMany(jobs: OpJob[]): Promise<void>;
  /** Whether jobs go to BullMQ's add script in batches (false: through `Queue.add`, or not known before the first add). */
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
 * - opts: { attempts, jobId, priority, backoff: { type, delay } } (jobs with a priority: the writer
 *   sends the others through `Queue.add`).
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
        parts = {
          before: Buffer.concat([map(4), attemptsKey, uint(opts.attempts), jobIdKey]),
          after: Buffer.concat([
            priorityKey,
            uint(opts.priority),
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

/** BullMQ's script of that base name as its Queue registered it on the connection (`name:<version>`). */
function findScript(redis: Redis, name: string): { command: string; lua: string } | undefined {
  const scripts = (redis as unknown as { scriptsSet?: Record<string, { lua?: unknown }> }).scriptsSet ?? {};
  const found = Object.keys(scripts).filter((key) => key.startsWith(`${name}:`));
  const command = found.length === 1 ? found[0] : undefined;
  const lua = command === undefined ? undefined : scripts[command]?.lua;
  return command !== undefined && typeof lua === "string" ? { command, lua } : undefined;
}

/**
 * BullMQ's add script run once per job of a batch, inside one script call: its text becomes the body of
 * a function whose parameters shadow KEYS and ARGV, so each job sees exactly what a call of its own
 * would (its `return` ends that job's turn). ARGV holds three arguments per job, in order.
 */
export function toBatchAddLua(addLua: string): string {
  return `local function addOne(KEYS, ARGV)
${addLua}
end
local out = {}
for i = 1, #ARGV, 3 do
  out[#out + 1] = addOne(KEYS, { ARGV[i], ARGV[i + 1], ARGV[i + 2] }) or false
end
return out
`;
}

type BatchCall = (args: Array<string | Buffer>) => Promise<unknown[]>;

interface Pending {
  args: [Buffer, string, Buffer];
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Adds operations jobs with BullMQ's own add script, without `Queue.add`, and the jobs of one burst in
 * one round trip.
 *
 * `Queue.add` spends most of the producer's CPU per job on what shipbot's jobs do not use: a `Job`
 * object (option merging, validation), the telemetry wrapper, a proxy around the connection, key lists
 * and MessagePack built per call; and every add is a command, a system call and a script call in Redis
 * of its own. Here keys and constant bytes are made once, and the adds issued in one turn of the event
 * loop (commands in flight finish in bursts) leave as one call of BullMQ's add script wrapped in a loop
 * (`toBatchAddLua`), at most `batch` jobs a call. Each job still gets exactly the script's effects and
 * answer: the contract test (test/integration/job-writer.test.ts) compares the stored jobs, their order
 * and their events with `Queue.add`'s, so workers, the deriver and the dashboard see what they saw
 * before. A job waits for its batch no longer than the code that queued it runs anyway: the batch leaves
 * when the current microtasks are done.
 *
 * Falls back to `Queue.add` when BullMQ's script cannot be found on the connection (another version's
 * naming), for a job without a priority, and when traces are on (`Queue.add` then carries the trace
 * context in the job).
 */
export function createJobWriter(
  queue: Queue,
  redis: Redis,
  options: { traced: boolean; batch?: number; bulkBatch?: number },
): JobWriter {
  const viaQueue = async (job: OpJob) => {
    await queue.add(job.name, job.data, job.opts);
  };
  const batch = Math.max(1, options.batch ?? 16);
  // A fan-out's calls are larger: nobody's command waits behind them, and each call still runs in about
  // a millisecond of Redis time.
  const bulkBatch = Math.max(1, options.bulkBatch ?? 50);
  const keys = queue.keys;
  const pack = createJobPacker(keys[""] ?? "");
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
  // undefined: not looked up yet (BullMQ registers its scripts once its Queue has the connection).
  let addBatch: BatchCall | null | undefined = options.traced ? null : undefined;
  let pending: Pending[] = [];
  let scheduled = false;

  const lookUp = (): BatchCall | null => {
    const add = findScript(redis, "addPrioritizedJob");
    if (add === undefined) return null;
    const name = `shipbotBatch_${add.command.replace(/\W/g, "_")}`;
    const commands = redis as unknown as Record<string, BatchCall | undefined>;
    if (typeof commands[name] !== "function")
      redis.defineCommand(name, { numberOfKeys: prioritizedKeys.length, lua: toBatchAddLua(add.lua) });
    const call = commands[name];
    return typeof call === "function" ? call.bind(redis) : null;
  };

  const send = (jobs: Pending[], call: BatchCall) => {
    const args: Array<string | Buffer> = prioritizedKeys.slice();
    for (const job of jobs) args.push(job.args[0], job.args[1], job.args[2]);
    call(args).then(
      (replies) => {
        jobs.forEach((job, i) => {
          const reply = replies[i];
          if (typeof reply === "number" && reply < 0) job.reject(toAddError(reply));
          else if (typeof reply === "string") job.resolve();
          else job.reject(new Error("the queue gave no answer for the job"));
        });
      },
      (error: unknown) => {
        for (const job of jobs) job.reject(error);
      },
    );
  };

  const flush = () => {
    scheduled = false;
    const jobs = pending;
    pending = [];
    if (jobs.length > 0 && addBatch) send(jobs, addBatch);
  };

  const ready = async (): Promise<BatchCall | null> => {
    if (addBatch === undefined) {
      await queue.waitUntilReady();
      addBatch ??= lookUp();
    }
    return addBatch;
  };

  const toArgs = (job: OpJob): Pending["args"] => [
    pack.args(job.opts.jobId, job.name, Date.now()),
    JSON.stringify(job.data),
    pack.opts(job.opts),
  ];

  return {
    get direct() {
      return addBatch !== null && addBatch !== undefined;
    },
    async add(job) {
      const call = addBatch ?? (await ready());
      if (call === null || !(job.opts.priority > 0)) return viaQueue(job);
      const args = toArgs(job);
      return new Promise<void>((resolve, reject) => {
        pending.push({ args, resolve, reject });
        if (pending.length >= batch) {
          const full = pending;
          pending = [];
          send(full, call);
        } else if (!scheduled) {
          scheduled = true;
          process.nextTick(flush);
        }
      });
    },
    async addMany(jobs) {
      const call = addBatch ?? (await ready());
      if (call === null || jobs.some((job) => !(job.opts.priority > 0))) {
        await queue.addBulk(jobs);
        return;
      }
      const answers: Array<Promise<void>> = [];
      let chunk: Pending[] = [];
      for (const job of jobs) {
        const args = toArgs(job);
        answers.push(new Promise<void>((resolve, reject) => chunk.push({ args, resolve, reject })));
        if (chunk.length >= bulkBatch) {
          send(chunk, call);
          chunk = [];
        }
      }
      if (chunk.length > 0) send(chunk, call);
      await Promise.all(answers);
    },
  };
}
