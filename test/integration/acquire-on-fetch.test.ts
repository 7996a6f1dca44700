import { randomBytes } from "node:crypto";
import { DelayedError, type Job, Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createRuntime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import { activeFreeze, describeFreeze } from "../../src/core/freeze-windows.ts";
import { type JobData, jobPriority } from "../../src/core/model.ts";
import { createKeys, type Keys } from "../../src/queue/keys.ts";
import { type AcquireResult, createLeases, heldKey } from "../../src/queue/lease-scripts.ts";
import { toLeaseRequest } from "../../src/queue/ops-queue.ts";
import { installAcquireOnFetch } from "../../src/worker/acquire-on-fetch.ts";
import { chatCommand, loadExampleConfig } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { redisUrl, testConfig } from "../helpers/test-runtime.ts";
import { trackRedis } from "../helpers/tracked-redis.ts";

/**
 * The worker's fetch runs shipbot's acquire inside BullMQ's own fetch scripts. These tests hold it to
 * two contracts: BullMQ hands out and finishes jobs exactly as with its own scripts, and each job gets
 * the same answer and leaves the same records (lease, line, state, audit, card marks) as the acquire
 * script called on its own, which the worker used before and still uses for what the fetch leaves alone.
 */
const { opened, connect } = trackRedis();

const runningText = { deploy: "Rolling out", rollback: "Rolling back", scale: "Scaling" };
const staleMs = 16_000;

/** The example config with a freeze window that is open all day, every day, in production. */
function frozenProductionConfig(): Config {
  const base = loadExampleConfig();
  const production = base.environments.production;
  if (!production) throw new Error("the example config has no production");
  const always = {
    name: "change freeze",
    timezone: "UTC",
    days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as Array<"mon">,
    start: "00:00",
    end: "00:00",
  };
  return {
    ...base,
    environments: { ...base.environments, production: { ...production, freezes: [always] } },
  };
}

const jobData = (
  kind: JobData["kind"],
  service: string,
  env: string,
  extra: Partial<JobData> = {},
): JobData => ({
  kind,
  service,
  env,
  ...(kind === "deploy" ? { version: "v2" } : {}),
  ...(kind === "scale" ? { replicas: 3 } : {}),
  requestedBy: { id: "slack:U0ALICE001", name: "alice" },
  conversation: { platform: "shell", channel: "test" },
  commandId: `cmd-${randomBytes(3).toString("hex")}`,
  requestedAt: 1_765_000_000_000,
  traceId: "0123456789abcdef01",
  ...extra,
});

interface Scenario {
  id: string;
  data: unknown;
  attempts?: number;
}

/**
 * One queue with the guards the scenarios need: `locked` locked by someone else in staging, `busy`
 * held by a live job in staging, the scale job marked cancelled, in `after` a rollback that a lock
 * held (since lifted), which has not looked again yet, and in qa every service locked by someone else
 * while `covered` is locked by the scenarios' requester.
 */
async function world(redis: Redis, scenarios: Scenario[]) {
  const keys = createKeys(`aof${randomBytes(4).toString("hex")}`);
  const queue = new Queue(keys.opsQueue, { connection: redis, prefix: keys.prefix });
  opened.push({ close: () => queue.obliterate({ force: true }).then(() => queue.close()) });
  await queue.waitUntilReady();
  await redis.hset(
    keys.locks,
    "locked:staging",
    JSON.stringify({ by: "bob", byId: "slack:U0BOB00001", reason: "db migration" }),
  );
  await redis.hset(
    keys.locks,
    "*:qa",
    JSON.stringify({ by: "bob", byId: "slack:U0BOB00001", reason: "release train" }),
    "covered:qa",
    JSON.stringify({ by: "alice", byId: "slack:U0ALICE001", reason: "hotfix" }),
  );
  await redis.set(keys.lease("busy", "staging"), "holder|7");
  await redis.set(keys.bullLock("holder"), "token", "PX", 60_000);
  await redis.hset(keys.marks, "j6", "cancelled|carol");
  const heldRollback = jobPriority.rollback * 1e13 + 1_764_999_999_000;
  await redis.hset(
    heldKey(keys, "after", "staging"),
    "h1",
    `${heldRollback}|${Date.now()}|rollback|slack:U0BOB00001`,
  );
  for (const s of scenarios) {
    const kind = (s.data as { kind?: string }).kind;
    const priority = kind === "rollback" || kind === "deploy" || kind === "scale" ? jobPriority[kind] : 2;
    await queue.add(`k8s.${kind}`, s.data, { jobId: s.id, priority, attempts: s.attempts ?? 1 });
  }
  return { keys, queue };
}

/** What a scenario left in Redis, with times and hash-chain values (which differ between runs) masked. */
async function records(redis: Redis, keys: Keys, ids: string[]) {
  const mask = (v: string) =>
    /^\d{13}$/.test(v) ? "<ms>" : /^[0-9a-f]{40}$/.test(v) ? "<hash>" : v.replaceAll(keys.prefix, "<prefix>");
  const hash = async (key: string) =>
    Object.fromEntries(Object.entries(await redis.hgetall(key)).map(([k, v]) => [k, mask(v)]));
  const out: Record<string, unknown> = {};
  for (const id of ids) out[`state:${id}`] = await hash(keys.job(id));
  for (const service of ["api", "locked", "busy", "after"])
    for (const env of ["staging", "production"]) {
      out[`lease:${service}:${env}`] = await redis.get(keys.lease(service, env));
      out[`fence:${service}:${env}`] = await redis.get(keys.fence(service, env));
      out[`line:${service}:${env}`] = await redis.zrange(keys.line(service, env), "0", "-1", "WITHSCORES");
      // "<score>|<last look>|<kind>|<requester>": the look's time masked.
      out[`held:${service}:${env}`] = Object.fromEntries(
        Object.entries(await redis.hgetall(heldKey(keys, service, env))).map(([k, v]) => [
          k,
          v.replace(/\|\d{13}\|/, "|<ms>|"),
        ]),
      );
    }
  out.marks = await redis.hgetall(keys.marks);
  out.seen = Object.keys(await redis.hgetall(keys.lineSeen));
  out.cards = await redis.zrange(keys.cards, "0", "-1");
  out.audit = (await redis.xrange(keys.audit, "-", "+")).map(([, fields]) => fields.map(mask));
  return out;
}

/** A worker (concurrency 1) on a connection of its own with the fetch that acquires; `onJob` gets the lease. */
function fusedWorker(
  keys: Keys,
  config: Config,
  onJob: (job: Job<JobData>, lease: AcquireResult | undefined, token?: string) => Promise<void>,
) {
  const connection = connect();
  const fetched = installAcquireOnFetch(connection, { keys, config, staleMs, runningText });
  const worker = new Worker(
    keys.opsQueue,
    (job: Job<JobData>, token?: string) =>
      onJob(job, fetched.take(job.id as string, job.attemptsStarted), token),
    { connection, prefix: keys.prefix, concurrency: 1 },
  );
  opened.push(worker);
  return { worker, fetched };
}

async function drain(worker: Worker, count: number): Promise<string[]> {
  const order: string[] = [];
  await new Promise<void>((resolve, reject) => {
    worker.on("completed", (job) => {
      order.push(job.id as string);
      if (order.length === count) resolve();
    });
    worker.on("failed", (job, error) => reject(new Error(`${job?.id} failed: ${error.message}`)));
  });
  return order;
}

describe("acquire on fetch", () => {
  const scenarios: Scenario[] = [
    { id: "j1", data: jobData("deploy", "api", "staging") },
    { id: "j2", data: jobData("deploy", "locked", "staging") },
    { id: "j3", data: jobData("deploy", "busy", "staging") },
    { id: "j4", data: jobData("deploy", "api", "production") },
    { id: "j5", data: jobData("rollback", "api", "production") },
    { id: "j6", data: jobData("scale", "api", "staging") },
    { id: "j7", data: jobData("deploy", "api", "staging", { requestedAt: 1_765_000_000_500 }) },
    { id: "j8", data: jobData("deploy", "after", "staging") },
    { id: "j9", data: jobData("deploy", "covered", "qa") },
  ];
  const ids = scenarios.map((s) => s.id);

  it("gives every job the answer and records of the acquire script, and BullMQ's order and events", async () => {
    const config = frozenProductionConfig();

    // The separate acquire, as the worker ran it before: BullMQ's own fetch, then one script call.
    const plainRedis = connect();
    const plain = await world(plainRedis, scenarios);
    const leases = createLeases(plainRedis, plain.keys);
    const separate = new Map<string, AcquireResult>();
    const plainWorker = new Worker(
      plain.keys.opsQueue,
      async (job: Job<JobData>) => {
        const frozen =
          job.data.kind === "rollback" ? undefined : activeFreeze(config, job.data.env, Date.now());
        separate.set(
          job.id as string,
          await leases.acquire(toLeaseRequest(job.id as string, job.data), {
            staleMs,
            runningText: runningText[job.data.kind],
            requester: job.data.requestedBy.id,
            fresh: job.attemptsStarted <= 1,
            ...(frozen ? { scheduledFreeze: describeFreeze(frozen, job.data.env) } : {}),
          }),
        );
      },
      { connection: connect(), prefix: plain.keys.prefix, concurrency: 1 },
    );
    opened.push(plainWorker);
    const plainOrder = await drain(plainWorker, scenarios.length);

    // The fused fetch: no acquire call of the worker's own.
    const fusedRedis = connect();
    const fused = await world(fusedRedis, scenarios);
    const taken = new Map<string, AcquireResult | undefined>();
    const { worker: fusedW, fetched } = fusedWorker(fused.keys, config, async (job, lease) => {
      taken.set(job.id as string, lease);
    });
    const fusedOrder = await drain(fusedW, scenarios.length);

    // What a person sees on the cards: a rollback first, the lock, the busy target's line, the
    // freeze (which the rollback passes), the cancellation, the wait for a held rollback.
    expect(Object.fromEntries(taken)).toEqual(Object.fromEntries(separate));
    expect(taken.get("j1")).toEqual({ status: "acquired", fence: 1, firstFence: 1 });
    expect(taken.get("j2")).toEqual({
      status: "blocked",
      reason: "locked/staging is locked by bob: db migration",
      position: 0,
    });
    expect(taken.get("j3")).toEqual({ status: "busy", holder: "holder", position: 1, superseded: [] });
    expect(taken.get("j4")).toMatchObject({
      status: "blocked",
      reason: expect.stringMatching(/change freeze/),
    });
    expect(taken.get("j5")).toMatchObject({ status: "acquired" });
    expect(taken.get("j6")).toEqual({ status: "cancelled", by: "carol" });
    // The held rollback goes first once it looks again; the lock that held it is gone.
    expect(taken.get("j8")).toEqual({ status: "busy", holder: "h1", position: 1, superseded: [] });
    // The requester's own lock on the service does not hide the lock on every service.
    expect(taken.get("j9")).toEqual({
      status: "blocked",
      reason: "covered/qa is locked by bob: release train",
      position: 0,
    });
    expect(fetched.size).toBe(0);

    expect(fusedOrder).toEqual(plainOrder);
    expect(fusedOrder[0]).toBe("j5");
    expect(await records(fusedRedis, fused.keys, ids)).toEqual(await records(plainRedis, plain.keys, ids));
    const bullEvents = async (redis: Redis, queue: Queue) =>
      (await redis.xrange(queue.keys.events as string, "-", "+")).map(([, f]) => `${f[1]}:${f[3]}`);
    expect(await bullEvents(fusedRedis, fused.queue)).toEqual(await bullEvents(plainRedis, plain.queue));
  });

  it("leaves a job whose data is not an operation to the worker, with nothing written for it", async () => {
    const redis = connect();
    const odd: Scenario[] = [
      { id: "x1", data: { kind: "explode", service: "api", env: "staging" } },
      { id: "x2", data: { ...jobData("deploy", "api", "staging"), requestedAt: "yesterday" } },
      { id: "x3", data: jobData("deploy", "api", "staging") },
    ];
    const w = await world(redis, odd);
    const taken = new Map<string, AcquireResult | undefined>();
    const { worker } = fusedWorker(w.keys, loadExampleConfig(), async (job, lease) => {
      taken.set(job.id as string, lease);
    });
    await drain(worker, odd.length);
    expect(taken.get("x1")).toBeUndefined();
    expect(taken.get("x2")).toBeUndefined();
    expect(taken.get("x3")).toEqual({ status: "acquired", fence: 1, firstFence: 1 });
    expect(await redis.exists(w.keys.job("x1"), w.keys.job("x2"))).toBe(0);
  });

  it("answers a retried job for its new start, not with what an earlier start took", async () => {
    const redis = connect();
    // Two attempts, no backoff: the retry comes straight back through the fetch.
    const w = await world(redis, [{ id: "r1", data: jobData("deploy", "api", "staging"), attempts: 2 }]);
    const starts: Array<{ attempt: number; lease: AcquireResult | undefined }> = [];
    const { worker } = fusedWorker(w.keys, loadExampleConfig(), async (job, lease) => {
      starts.push({ attempt: job.attemptsStarted, lease });
      if (job.attemptsStarted === 1) throw new Error("kubernetes said no");
    });
    const done = new Promise<void>((resolve) => worker.on("completed", () => resolve()));
    await done;
    expect(starts).toEqual([
      { attempt: 1, lease: { status: "acquired", fence: 1, firstFence: 1 } },
      // The same job holds the target: a new fence, its first one kept for the fencing of the retry.
      { attempt: 2, lease: { status: "acquired", fence: 2, firstFence: 1 } },
    ]);
  });
});

describe("acquire on fetch, a job that waited", () => {
  it("takes the target on a later start and leaves the target's line", async () => {
    const redis = connect();
    const w = await world(redis, [{ id: "b1", data: jobData("deploy", "busy", "staging") }]);
    const starts: Array<AcquireResult | undefined> = [];
    const { worker } = fusedWorker(w.keys, loadExampleConfig(), async (job, lease, token) => {
      starts.push(lease);
      if (lease?.status === "busy") {
        // As the worker does: park the job; here the holder finishes meanwhile.
        expect(await redis.zcard(w.keys.line("busy", "staging"))).toBe(1);
        await redis.del(w.keys.bullLock("holder"));
        await job.moveToDelayed(Date.now() + 20, token);
        throw new DelayedError();
      }
    });
    await drain(worker, 1);
    expect(starts).toEqual([
      { status: "busy", holder: "holder", position: 1, superseded: [] },
      { status: "acquired", fence: 1, firstFence: 1 },
    ]);
    expect(await redis.zcard(w.keys.line("busy", "staging"))).toBe(0);
    expect(await redis.get(w.keys.lease("busy", "staging"))).toBe("b1|1");
  });
});

describe("acquire on fetch, in the runtime", () => {
  it("takes every job's lease in the fetch: the worker never acquires separately", async () => {
    const lines: string[] = [];
    const log = pino({ level: "debug" }, { write: (line: string) => lines.push(line) });
    const gated = createGatedExecutor();
    const runtime = await createRuntime({
      config: testConfig(),
      redisUrl,
      executor: gated.executor,
      chats: {},
      log,
      accept: true,
      work: true,
      notify: true,
    });
    opened.push(runtime);
    const asked = await Promise.all(
      ["api", "web"].map((service) => runtime.handle(chatCommand(`/deploy ${service} staging v2`))),
    );
    const calls = await gated.started(2);
    for (const call of calls) call.finish();
    for (const reply of asked) {
      const jobId = reply.jobIds[0] as string;
      for (let i = 0; i < 200 && (await runtime.status.read(jobId))?.phase !== "succeeded"; i++)
        await new Promise((r) => setTimeout(r, 25));
      expect((await runtime.status.read(jobId))?.phase).toBe("succeeded");
    }
    expect(lines.filter((l) => l.includes("acquiring it separately"))).toEqual([]);
  });
});
