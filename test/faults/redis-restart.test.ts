/**
 * Promise: no accepted command is lost, and none is applied twice, across a Redis restart. A real
 * redis-server with an append-only file is stopped and started again on the same port and data while
 * jobs wait and one runs; the same processes (no restart of shipbot) reconnect and finish every job once.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";
import { createJobId } from "../../src/queue/job-id.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { type RedisServer, startRedisServer, waitThroughOutage } from "../helpers/redis-server.ts";
import { createRecordingChat, quietLog, testConfig } from "../helpers/test-runtime.ts";

let redis: RedisServer;
let runtime: Runtime | undefined;
let gatedNow: ReturnType<typeof createGatedExecutor> | undefined;

beforeAll(async () => {
  redis = await startRedisServer();
});

afterEach(async () => {
  if (!redis.running()) await redis.start();
  // A failed test may leave operations waiting at their gate, and closing waits for running jobs: let
  // every operation through until the runtime is closed.
  const release = setInterval(() => {
    for (const call of gatedNow?.calls ?? []) call.finish();
  }, 50);
  try {
    await runtime?.close();
  } finally {
    clearInterval(release);
  }
  runtime = undefined;
});

afterAll(async () => {
  await redis?.close();
});

function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  return waitThroughOutage(what, probe, timeoutMs);
}

async function start() {
  const gated = createGatedExecutor();
  gatedNow = gated;
  const chat = createRecordingChat();
  const config: Config = testConfig();
  runtime = await createRuntime({
    config,
    redisUrl: redis.url,
    executor: gated.executor,
    chats: { shell: chat },
    log: quietLog,
    accept: true,
    work: true,
    notify: true,
    // One job at a time: the second target's job really waits in BullMQ's list, not only behind a lease.
    concurrency: 1,
  });
  return { gated, chat, rt: runtime };
}

async function submit(rt: Runtime, text: string): Promise<string> {
  const reply = await rt.handle(chatCommand(text, demoUser));
  expect(reply.error?.message).toBeUndefined();
  expect(reply.jobIds).toHaveLength(1);
  return reply.jobIds[0] as string;
}

const final = (rt: Runtime, jobId: string) => () =>
  rt.status.read(jobId).then((s) => (s && terminalPhases.has(s.phase) ? s : undefined));

describe("no accepted command is lost across a Redis restart", () => {
  it.each(["SIGTERM", "SIGKILL"] as const)(
    "keeps waiting jobs and the running job through a %s of Redis, reconnects without a process restart, runs each once",
    async (signal) => {
      const { gated, chat, rt } = await start();
      const running = await submit(rt, "/deploy api staging v2");
      const [first] = await gated.started(1);
      const behindLease = await submit(rt, "/scale api staging 4");
      const queued = await submit(rt, "/deploy web staging v2");
      await waitFor("both new jobs to be recorded as queued", async () => {
        const [a, b] = [await rt.status.read(behindLease), await rt.status.read(queued)];
        return a?.phase === "queued" && b?.phase === "queued" ? true : undefined;
      });

      // Acknowledged writes are in the AOF (written before Redis replies; everysec fsync only matters for
      // a machine crash), so a graceful stop and a SIGKILL of the process both keep them.
      await redis.stop(signal);
      await waitFor("the client to notice", async () => (rt.redis.status !== "ready" ? true : undefined));
      await redis.start();
      await waitFor("the accepting connection to reconnect", async () =>
        rt.redis.status === "ready" ? true : undefined,
      );

      first?.finish();
      await gated.started(2);
      gated.calls[1]?.finish();
      await gated.started(3);
      gated.calls[2]?.finish();

      const states: JobState[] = [];
      for (const id of [running, behindLease, queued]) states.push(await waitFor(`job ${id}`, final(rt, id)));
      expect(states.map((s) => s.phase)).toEqual(["succeeded", "succeeded", "succeeded"]);
      // A short grace period for any duplicate run to show up (not a timing assertion: it can only add calls).
      await sleep(1_000);
      expect(gated.calls.map((c) => `${c.kind} ${c.target.deployment}`).sort()).toEqual([
        "deploy api",
        "deploy web",
        "scale api",
      ]);

      // Every card ends showing its job's final state, one card per job.
      await waitFor("every card to show its final state", async () => {
        for (const s of states) {
          const ref = await rt.redis.get(rt.keys.cardRef(s.jobId));
          if (!ref || (JSON.parse(ref) as { seq: number }).seq < s.seq) return undefined;
        }
        return true;
      });
      expect(chat.cards.size).toBe(3);
      for (const s of states) {
        const { ref } = JSON.parse((await rt.redis.get(rt.keys.cardRef(s.jobId))) ?? "{}") as { ref: string };
        const current = await rt.status.read(s.jobId);
        expect(current?.seq).toBe(s.seq);
        expect(chat.cards.get(ref)?.versions.at(-1)).toEqual(renderJobCard(current as JobState));
      }
    },
  );

  it("refuses a command while Redis is down, with a message, and leaves no job once it is back", async () => {
    const { gated, rt } = await start();
    await redis.stop("SIGKILL");
    await waitFor("the client to notice", async () => (rt.redis.status !== "ready" ? true : undefined));
    const command = chatCommand("/deploy api staging v3", demoUser);
    const reply = await rt.handle(command);
    expect(reply.jobIds).toEqual([]);
    expect(reply.error?.message).toBe(
      "queue unavailable (cannot reach Redis); nothing was done, try again shortly",
    );

    await redis.start();
    await waitFor("the accepting connection to reconnect", async () =>
      rt.redis.status === "ready" ? true : undefined,
    );
    const jobId = createJobId("shell", command.id, 0);
    expect(await rt.ops.queue.getJob(jobId)).toBeUndefined();
    expect(await rt.status.read(jobId)).toBeUndefined();
    // Give a worker with a buffered command every chance to run it: nothing may appear.
    await sleep(1_000);
    expect(gated.calls).toHaveLength(0);
    expect(
      await rt.ops.queue.getJobCounts("waiting", "active", "delayed", "completed", "failed", "prioritized"),
    ).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, prioritized: 0 });
  });
});
