import { Redis } from "ioredis";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntime } from "../../src/bin/create-runtime.ts";
import { ShipbotError } from "../../src/core/errors.ts";
import { trimFinished } from "../../src/queue/retention.ts";
import { chatCommand, demoUser, sre } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { redisUrl, startTestRuntime, type TestRuntime, testConfig } from "../helpers/test-runtime.ts";

let current: TestRuntime | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

async function start(concurrency = 10) {
  const gated = createGatedExecutor();
  current = await startTestRuntime({ executor: gated.executor, concurrency });
  return { gated, t: current };
}

async function submit(t: TestRuntime, text: string, id?: string): Promise<string> {
  const reply = await t.runtime.handle(chatCommand(text, demoUser, id));
  expect(reply.error?.message).toBeUndefined();
  expect(reply.jobIds).toHaveLength(1);
  return reply.jobIds[0] as string;
}

describe("operations queue (real Redis, real BullMQ)", () => {
  it("makes one job and one card for a command delivered twice", async () => {
    const { gated, t } = await start();
    const first = await t.runtime.handle(chatCommand("/deploy api staging v2", demoUser, "evt-1"));
    const again = await t.runtime.handle(chatCommand("/deploy api staging v2", demoUser, "evt-1"));
    expect(again.jobIds).toEqual(first.jobIds);
    const [call] = await gated.started(1);
    call?.finish();
    await t.waitForPhase(first.jobIds[0] as string, ["succeeded"]);
    await new Promise((r) => setTimeout(r, 300));
    expect(gated.calls).toHaveLength(1);
    expect(await t.runtime.ops.queue.getJobCounts("completed", "waiting", "delayed", "active")).toMatchObject(
      { completed: 1, waiting: 0 },
    );
    expect(t.chat.cards.size).toBe(1);
  });

  it("keeps a finished job a day (completed) or a week (failed), so a later redelivery creates nothing twice", async () => {
    const { gated, t } = await start();
    const queue = t.runtime.ops.queue;
    // One target, so the operations run one after another in the order they are let through.
    const run = async (version: string, outcome: "finish" | "fail", eventId?: string) => {
      const jobId = await submit(t, `/deploy api staging ${version}`, eventId);
      const calls = await gated.started(gated.calls.length + 1);
      const call = calls[calls.length - 1];
      if (outcome === "finish") call?.finish();
      else call?.fail(new ShipbotError("conflict", `${version} is broken`));
      await t.waitForPhase(jobId, [outcome === "finish" ? "succeeded" : "failed"]);
      return jobId;
    };
    const old = await run("v2", "finish", "evt-retained");
    const recent = await run("v3", "finish");
    const failedLongAgo = await run("v4", "fail");
    const failedDaysAgo = await run("v5", "fail");

    // The chat platform delivers the first command again after its job finished: same job, no new run.
    const again = await t.runtime.handle(chatCommand("/deploy api staging v2", demoUser, "evt-retained"));
    expect(again.jobIds).toEqual([old]);
    await new Promise((r) => setTimeout(r, 300));
    expect(gated.calls).toHaveLength(4);
    expect(t.chat.cards.size).toBe(4);
    expect(await queue.getJobCounts("completed", "failed", "waiting", "delayed")).toMatchObject({
      completed: 2,
      failed: 2,
      waiting: 0,
      delayed: 0,
    });

    // Age the finished jobs as if they had finished earlier (BullMQ ages them by their score in its
    // completed and failed sets); the worker's next trim removes what is past its retention.
    const client = new Redis(redisUrl);
    const hour = 3600 * 1000;
    const now = Date.now();
    await client.zadd(queue.toKey("completed"), "XX", now - 25 * hour, old, now - 23 * hour, recent);
    await client.zadd(
      queue.toKey("failed"),
      "XX",
      now - 8 * 24 * hour,
      failedLongAgo,
      now - 6 * 24 * hour,
      failedDaysAgo,
    );
    await client.quit();
    const completedNow = await run("v6", "finish");
    const failedNow = await run("v7", "fail");
    // Finishing a job trims nothing by itself; the worker trims once a minute (here: now).
    expect(await queue.getJob(old)).toBeDefined();
    expect(await trimFinished(queue, t.runtime.redis)).toEqual({ completed: 1, failed: 1 });

    const kept = async (jobId: string) => (await queue.getJob(jobId)) !== undefined;
    expect(await kept(old)).toBe(false);
    expect(await kept(recent)).toBe(true);
    expect(await kept(completedNow)).toBe(true);
    expect(await kept(failedLongAgo)).toBe(false);
    expect(await kept(failedDaysAgo)).toBe(true);
    expect(await kept(failedNow)).toBe(true);

    // Past the count, the oldest go first; two processes trimming at once remove them once, not twice.
    const limits = {
      completed: { age: 30 * 24 * 3600, count: 1 },
      failed: { age: 30 * 24 * 3600, count: 5 },
    };
    const both = await Promise.all([
      trimFinished(queue, t.runtime.redis, limits),
      trimFinished(queue, t.runtime.redis, limits),
    ]);
    expect(both.reduce((sum, r) => sum + r.completed + r.failed, 0)).toBe(1);
    expect(await kept(recent)).toBe(false);
    expect(await kept(completedNow)).toBe(true);
  });

  it("runs one operation per service and environment at a time, and different targets in parallel", async () => {
    const { gated, t } = await start();
    const a = await submit(t, "/deploy api staging v2");
    await gated.started(1);
    const b = await submit(t, "/deploy api staging v3");
    const w = await submit(t, "/deploy web staging v7");
    await gated.started(2);
    const waiting = await t.waitForPhase(b, ["waiting"]);
    expect(waiting.text).toBe(`Waiting · position 1 for api/staging (behind ${a})`);
    expect(gated.calls.map((c) => `${c.target.deployment}:${c.arg}`)).toEqual([
      "api:ghcr.io/acme/api:v2",
      "web:ghcr.io/acme/web:v7",
    ]);

    gated.calls[0]?.finish();
    await gated.started(3);
    expect(gated.calls[2]?.arg).toBe("ghcr.io/acme/api:v3");
    // The second holder gets a higher fencing token than the first.
    expect(gated.calls[2]?.ctx.fence).toBeGreaterThan(gated.calls[0]?.ctx.fence ?? Number.POSITIVE_INFINITY);
    gated.calls[1]?.finish();
    gated.calls[2]?.finish();
    for (const id of [a, b, w]) expect((await t.waitForPhase(id, ["succeeded"])).phase).toBe("succeeded");
  });

  it("lets a newer deploy supersede an older one still waiting, never the running one", async () => {
    const { gated, t } = await start();
    const a = await submit(t, "/deploy api staging v2");
    await gated.started(1);
    const b = await submit(t, "/deploy api staging v3");
    await t.waitForPhase(b, ["waiting"]);
    const c = await submit(t, "/deploy api staging v4");
    const superseded = await t.waitForPhase(b, ["superseded"]);
    expect(superseded.text).toBe(`Superseded by a newer deploy (${c})`);
    gated.calls[0]?.finish();
    await gated.started(2);
    gated.calls[1]?.finish();
    await t.waitForPhase(c, ["succeeded"]);
    expect((await t.waitForPhase(a, ["succeeded"])).phase).toBe("succeeded");
    expect(gated.calls.map((call) => call.arg)).toEqual(["ghcr.io/acme/api:v2", "ghcr.io/acme/api:v4"]);
  });

  it("lets a newer deploy supersede an older one that waits behind a lock, so the older never runs after it", async () => {
    const { gated, t } = await start();
    const locked = await t.runtime.handle(chatCommand("/lock api staging db migration", sre(1)));
    expect(locked.error?.message).toBeUndefined();
    const a = await submit(t, "/deploy api staging v2");
    await t.waitForPhase(a, ["waiting"]);
    const b = await submit(t, "/deploy api staging v3");
    expect((await t.waitForPhase(b, ["waiting"])).text).toBe(
      "Waiting · api/staging is locked by sre-1: db migration",
    );
    // Both wait outside the line; after the unlock each looks again on its own clock, in either order.
    // The older one must not run after the newer one and leave v2 live.
    expect((await t.waitForPhase(a, ["superseded"], 3_000)).text).toBe(`Superseded by a newer deploy (${b})`);
    await t.runtime.handle(chatCommand("/unlock api staging", sre(1)));
    const [call] = await gated.started(1);
    call?.finish();
    await t.waitForPhase(b, ["succeeded"]);
    await new Promise((r) => setTimeout(r, 800));
    expect(gated.calls.map((c) => c.arg)).toEqual(["ghcr.io/acme/api:v3"]);
  });

  it("lets a deploy that arrives after a guard lifts supersede an older one still blocked from before", async () => {
    const { gated, t } = await start();
    // An incident: when it resolves nothing wakes the jobs it held (an unlock or unfreeze does).
    const incident = { alert: "HighErrorRate", since: Date.now(), sinceText: "14:02", severity: "critical" };
    await t.runtime.redis.hset(t.runtime.keys.incidents, "api:staging", JSON.stringify(incident));
    const a = await submit(t, "/deploy api staging v2");
    await t.waitForPhase(a, ["waiting"]);
    await t.runtime.redis.hdel(t.runtime.keys.incidents, "api:staging");
    // Lands before the blocked deploy looks again, takes the free target and must void the older one.
    const b = await submit(t, "/deploy api staging v3");
    const [call] = await gated.started(1);
    expect(call?.arg).toBe("ghcr.io/acme/api:v3");
    expect((await t.waitForPhase(a, ["superseded"], 3_000)).text).toBe(`Superseded by a newer deploy (${b})`);
    call?.finish();
    await t.waitForPhase(b, ["succeeded"]);
    await new Promise((r) => setTimeout(r, 800));
    expect(gated.calls.map((c) => c.arg)).toEqual(["ghcr.io/acme/api:v3"]);
  });

  it("runs a waiting rollback before a waiting deploy", async () => {
    const { gated, t } = await start();
    await submit(t, "/deploy api staging v2");
    await gated.started(1);
    const deploy = await submit(t, "/deploy api staging v3");
    await t.waitForPhase(deploy, ["waiting"]);
    const rollback = await submit(t, "/rollback api staging");
    const waiting = await t.waitForPhase(rollback, ["waiting"]);
    expect(waiting.position).toBe(1);
    gated.calls[0]?.finish();
    await gated.started(2);
    expect(gated.calls[1]?.kind).toBe("rollback");
    gated.calls[1]?.finish();
    await gated.started(3);
    expect(gated.calls[2]?.kind).toBe("deploy");
    gated.calls[2]?.finish();
    await t.waitForPhase(deploy, ["succeeded"]);
  });

  it("cancels a waiting job, and refuses to cancel a running one", async () => {
    const { gated, t } = await start();
    const a = await submit(t, "/deploy api staging v2");
    await gated.started(1);
    await t.waitForPhase(a, ["running", "progress"]);
    const b = await submit(t, "/deploy api staging v3");
    await t.waitForPhase(b, ["waiting"]);

    const refused = await t.runtime.handle(chatCommand(`/cancel ${a}`));
    expect(refused.ok).toBe(false);
    expect(refused.error?.message).toBe(
      `job ${a} is already running and cannot be cancelled; roll back once it finishes`,
    );

    const cancelled = await t.runtime.handle(chatCommand(`/cancel ${b}`));
    expect(cancelled.card?.title).toBe(`Cancelled ${b}`);
    expect((await t.waitForPhase(b, ["cancelled"])).text).toBe("Cancelled by demo");
    gated.calls[0]?.finish();
    await t.waitForPhase(a, ["succeeded"]);
    await new Promise((r) => setTimeout(r, 500));
    expect(gated.calls).toHaveLength(1);

    const unknown = await t.runtime.handle(chatCommand("/cancel jzzzzzzzzzzzz"));
    expect(unknown.error?.message).toBe("no job jzzzzzzzzzzzz; it may have finished and been cleaned up");
    // A job that finished is kept a day, so a late cancel says how it ended; nothing changes.
    const late = await t.runtime.handle(chatCommand(`/cancel ${a}`));
    expect(late.error?.message).toBe(`job ${a} already ended (succeeded)`);
    const again = await t.runtime.handle(chatCommand(`/cancel ${b}`));
    expect(again.error?.message).toBe(`job ${b} already ended (cancelled)`);
    expect((await t.runtime.status.read(a))?.phase).toBe("succeeded");
  });

  it("keeps one card per job, edited in place until its final state", async () => {
    const { gated, t } = await start();
    const a = await submit(t, "/deploy api staging v2");
    const [call] = await gated.started(1);
    call?.ctx.onProgress({
      desired: 2,
      updated: 1,
      available: 0,
      total: 3,
      message: "",
      done: false,
      observed: true,
    });
    call?.ctx.onProgress({
      desired: 2,
      updated: 2,
      available: 2,
      total: 2,
      message: "",
      done: true,
      observed: true,
    });
    call?.finish();
    await t.waitForPhase(a, ["succeeded"]);
    const deadline = Date.now() + 5_000;
    while (
      Date.now() < deadline &&
      ![...t.chat.cards.values()].some((c) => c.versions.at(-1)?.tone === "success")
    ) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(t.chat.cards.size).toBe(1);
    const [card] = [...t.chat.cards.values()];
    const last = card?.versions.at(-1);
    expect(last?.tone).toBe("success");
    expect(last?.lines[0]).toMatch(/^✅ Deployed ghcr\.io\/acme\/api:v2 in \d+s$/);
    expect(last?.footer).toBe(`job ${a} · requested by demo`);
    // Coalescing may skip intermediate states, but never reorders them.
    const seen = card?.versions.map((v) => v.tone) ?? [];
    expect(seen.indexOf("success")).toBe(seen.length - 1);
  });

  it("answers 'queue unavailable, nothing was done' when Redis is down", async () => {
    const gated = createGatedExecutor();
    const runtime = await createRuntime({
      config: testConfig(),
      redisUrl: "redis://127.0.0.1:1",
      executor: gated.executor,
      chats: {},
      log: pino({ level: "silent" }),
      accept: true,
      work: false,
      notify: false,
    });
    try {
      const reply = await runtime.handle(chatCommand("/deploy api staging v2"));
      expect(reply.ok).toBe(false);
      expect(reply.card?.title).toBe(
        "queue unavailable (cannot reach Redis); nothing was done, try again shortly",
      );
    } finally {
      await runtime.close();
    }
  });
});

describe("queue ETAs from the target's recent run times", () => {
  it("shows position and expected start of waiting jobs and the time left of the running one", async () => {
    const { gated, t } = await start();
    const durations = t.runtime.keys.durations("api", "staging");
    // The last 20 runs of api in staging took 4 minutes each; older ones (which no longer count) 1 minute.
    await t.runtime.redis.lpush(durations, ...Array.from({ length: 25 }, () => "deploy:60000"));
    await t.runtime.redis.lpush(
      durations,
      ...Array.from({ length: 20 }, (_, i) => `${i % 2 ? "scale" : "deploy"}:240000`),
    );
    const a = await submit(t, "/deploy api staging v2");
    await gated.started(1);
    const b = await submit(t, "/scale api staging 3");
    const bWaiting = await t.waitForPhase(b, ["waiting"]);
    const c = await submit(t, "/scale api staging 4");
    const cWaiting = await t.waitForPhase(c, ["waiting"]);

    const startedAt = (await t.runtime.status.read(a))?.startedAt ?? 0;
    const clock = (ms: number) => {
      const minute = Math.ceil(ms / 60_000);
      return `${String(Math.floor(minute / 60) % 24).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;
    };
    expect(bWaiting.text).toBe(
      `Waiting · position 1 for api/staging (behind ${a}) · expected to start around ${clock(startedAt + 240_000)} UTC`,
    );
    expect(cWaiting.text).toBe(
      `Waiting · position 2 for api/staging (behind ${a}) · expected to start around ${clock(startedAt + 480_000)} UTC`,
    );

    const queue = await t.runtime.handle(chatCommand("/queue staging"));
    expect(queue.card?.lines).toEqual([
      `${a} · 🚀 api → staging · v2 · Rolling out · about 4 min left`,
      `${b} · ⚖ scale api in staging to 3 · waiting, position 1 · starts in about 4 min`,
      `${c} · ⚖ scale api in staging to 4 · waiting, position 2 · starts in about 8 min`,
    ]);

    gated.calls[0]?.finish();
    await t.waitForPhase(a, ["succeeded"]);
    // The finished deploy's run time joins the target's recent runs, and the list is cut back to 20.
    for (let i = 0; i < 200 && (await t.runtime.redis.llen(durations)) === 45; i++)
      await new Promise((r) => setTimeout(r, 25));
    const [newest] = await t.runtime.redis.lrange(durations, 0, 0);
    expect(newest).toMatch(/^deploy:\d+$/);
    expect(newest).not.toBe("deploy:240000");
    expect(await t.runtime.redis.llen(durations)).toBe(20);
    (await gated.started(2))[1]?.finish();
    (await gated.started(3))[2]?.finish();
    await t.waitForPhase(c, ["succeeded"]);
  });

  it("says when there is nothing to estimate from", async () => {
    const { gated, t } = await start();
    const a = await submit(t, "/deploy api staging v2");
    await gated.started(1);
    const b = await submit(t, "/scale api staging 3");
    await t.waitForPhase(b, ["waiting"]);
    const queue = await t.runtime.handle(chatCommand("/queue"));
    expect(queue.card?.lines).toEqual([
      `${a} · 🚀 api → staging · v2 · Rolling out · no recent runs to estimate from`,
      `${b} · ⚖ scale api in staging to 3 · waiting, position 1 · no ETA (no recent runs of this target)`,
    ]);
    gated.calls[0]?.finish();
    (await gated.started(2))[1]?.finish();
    await t.waitForPhase(b, ["succeeded"]);
  });
});
