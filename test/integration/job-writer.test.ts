import { randomBytes } from "node:crypto";
import { Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { jobPriority } from "../../src/core/model.ts";
import { createJobWriter, type OpJob } from "../../src/queue/create-job-writer.ts";
import { trackRedis } from "../helpers/tracked-redis.ts";

/**
 * shipbot adds operations jobs by calling BullMQ's add script itself. These tests hold that path to what
 * `Queue.add` stores, so a BullMQ upgrade that changes the script's arguments fails here, not in
 * production.
 */
const { opened, connect } = trackRedis();

async function twoQueues() {
  const redis = connect();
  const prefix = `tw${randomBytes(4).toString("hex")}`;
  const viaAdd = new Queue("{ops}", { connection: redis, prefix: `${prefix}a` });
  const direct = new Queue("{ops}", { connection: redis, prefix: `${prefix}b` });
  opened.push(
    { close: () => viaAdd.obliterate({ force: true }).then(() => viaAdd.close()) },
    { close: () => direct.obliterate({ force: true }).then(() => direct.close()) },
  );
  await Promise.all([viaAdd.waitUntilReady(), direct.waitUntilReady()]);
  return { redis, viaAdd, direct, writer: createJobWriter(direct, redis, { traced: false }) };
}

const opJob = (
  id: string,
  kind: "deploy" | "rollback" | "scale",
  extra: Record<string, unknown> = {},
): OpJob => ({
  name: `k8s.${kind}`,
  data: { kind, service: "api", env: "staging", requestedAt: 1_700_000_000_000, ...extra },
  opts: {
    jobId: id,
    priority: jobPriority[kind],
    attempts: 3,
    backoff: { type: "exponential", delay: 2_000 },
  },
});

/** A job hash without its timestamp, which is the moment of the add. */
async function storedJob(redis: Redis, queue: Queue, id: string) {
  // keys[""] is the queue's own prefix, ending in ":".
  const { timestamp, ...rest } = await redis.hgetall(`${queue.keys[""]}${id}`);
  expect(rest.name).toMatch(/^k8s\./);
  return { ...rest, hasTimestamp: Number(timestamp) > 0 };
}

/** The queue's event stream as (event, fields) without stream ids. */
async function events(redis: Redis, queue: Queue) {
  const entries = await redis.xrange(queue.keys.events as string, "-", "+");
  return entries.map(([, fields]) => fields);
}

/** Both queues hold the same jobs, in the same priority order, with the same events. */
async function expectSameQueues(redis: Redis, direct: Queue, viaAdd: Queue, jobs: OpJob[]) {
  for (const job of jobs)
    expect(await storedJob(redis, direct, job.opts.jobId)).toEqual(
      await storedJob(redis, viaAdd, job.opts.jobId),
    );
  const order = (q: Queue) => redis.zrange(q.keys.prioritized as string, "0", "-1", "WITHSCORES");
  expect(await order(direct)).toEqual(await order(viaAdd));
  expect(await events(redis, direct)).toEqual(await events(redis, viaAdd));
}

describe("the operations job writer", () => {
  it("calls BullMQ's add script directly with this BullMQ version", async () => {
    const { writer } = await twoQueues();
    await writer.add(opJob("j1", "deploy"));
    // If this fails after a BullMQ upgrade, the writer has fallen back to Queue.add: check the add
    // script's arguments in BullMQ's Redis backend and update create-job-writer.ts and this test.
    expect(writer.direct).toBe(true);
  });

  it("stores what Queue.add stores: the job hash, its priority order and its events", async () => {
    const { redis, viaAdd, direct, writer } = await twoQueues();
    const jobs = [
      opJob("jd1", "deploy", { version: "v2", requestedBy: { id: "U1", name: "ann" } }),
      opJob("js1", "scale", { replicas: 4 }),
      opJob("jr1", "rollback"),
      opJob("jd2", "deploy", { version: "v3", batch: "b1" }),
    ];
    for (const job of jobs) {
      await viaAdd.add(job.name, job.data, job.opts);
      await writer.add(job);
    }
    await expectSameQueues(redis, direct, viaAdd, jobs);
    // rollback first, then the deploys in arrival order, then the scale
    expect(await redis.zrange(direct.keys.prioritized as string, "0", "-1")).toEqual([
      "jr1",
      "jd1",
      "jd2",
      "js1",
    ]);
    expect(await redis.zrange(direct.keys.marker as string, "0", "-1")).toEqual(
      await redis.zrange(viaAdd.keys.marker as string, "0", "-1"),
    );
  });

  it("stores a burst of adds, sent as batches, as the same adds through Queue.add, each answered", async () => {
    const { redis, viaAdd, direct } = await twoQueues();
    // batches of 4: a burst of 10 becomes calls of 4, 4 and 2
    const writer = createJobWriter(direct, redis, { traced: false, batch: 4 });
    await writer.add(opJob("j0", "deploy"));
    const kinds = ["deploy", "rollback", "scale"] as const;
    const jobs = Array.from({ length: 10 }, (_, i) =>
      opJob(i === 7 ? "j0" : `jb${i}`, kinds[i % 3] ?? "deploy", { version: `v${i}` }),
    );
    await viaAdd.add("k8s.deploy", opJob("j0", "deploy").data, opJob("j0", "deploy").opts);
    await Promise.all(jobs.map((job) => viaAdd.add(job.name, job.data, job.opts)));
    // every caller hears back, the one whose id existed (j0) too
    await expect(Promise.all(jobs.map((job) => writer.add(job)))).resolves.toHaveLength(10);
    expect(writer.direct).toBe(true);
    await expectSameQueues(redis, direct, viaAdd, jobs);
  });

  it("stores a fan-out's jobs, in calls of the bulk size, as Queue.addBulk does", async () => {
    const { redis, viaAdd, direct } = await twoQueues();
    const writer = createJobWriter(direct, redis, { traced: false, bulkBatch: 7 });
    // 30 jobs: four full calls and a partial one; one id was queued before (a redelivered command)
    const jobs = Array.from({ length: 30 }, (_, i) =>
      opJob(`jf${i}`, "deploy", { version: "v2", batch: "bx" }),
    );
    const earlier = jobs[12] as OpJob;
    await writer.add(earlier);
    await viaAdd.add(earlier.name, earlier.data, earlier.opts);
    await writer.addMany(jobs);
    await viaAdd.addBulk(jobs);
    expect(await direct.getJobCounts("prioritized")).toEqual({ prioritized: 30 });
    await expectSameQueues(redis, direct, viaAdd, jobs);
  });

  it("leaves an existing job as it is when its id comes again, as Queue.add does", async () => {
    const { redis, viaAdd, direct, writer } = await twoQueues();
    const first = opJob("jx", "deploy", { version: "v2" });
    const again = opJob("jx", "deploy", { version: "v9" });
    await viaAdd.add(first.name, first.data, first.opts);
    await viaAdd.add(again.name, again.data, again.opts);
    await writer.add(first);
    await writer.add(again);
    expect(JSON.parse((await direct.getJob("jx"))?.asJSON().data ?? "{}")).toMatchObject({ version: "v2" });
    expect(await direct.getJobCounts("prioritized")).toEqual({ prioritized: 1 });
    expect(await events(redis, direct)).toEqual(await events(redis, viaAdd));
    expect((await events(redis, direct)).map((fields) => fields[1])).toContain("duplicated");
  });

  it("hands a worker the job with its data and retry options", async () => {
    const { redis, direct, writer } = await twoQueues();
    await writer.add(opJob("jw", "scale", { replicas: 5 }));
    const seen = await new Promise<{
      data: unknown;
      attempts: number | undefined;
      priority: number | undefined;
      name: string;
    }>((resolve) => {
      const worker = new Worker(
        "{ops}",
        async (job) => {
          resolve({
            data: job.data,
            attempts: job.opts.attempts,
            priority: job.opts.priority,
            name: job.name,
          });
        },
        { connection: redis.duplicate(), prefix: direct.opts.prefix as string },
      );
      opened.push(worker);
    });
    expect(seen).toEqual({
      name: "k8s.scale",
      data: { kind: "scale", service: "api", env: "staging", requestedAt: 1_700_000_000_000, replicas: 5 },
      attempts: 3,
      priority: jobPriority.scale,
    });
  });

  it("goes through Queue.add when traces are on, so the job carries the trace context", async () => {
    const { redis, direct } = await twoQueues();
    const writer = createJobWriter(direct, redis, { traced: true });
    await writer.add(opJob("jt", "deploy"));
    expect(writer.direct).toBe(false);
    expect(await direct.getJob("jt")).toBeDefined();
  });
});
