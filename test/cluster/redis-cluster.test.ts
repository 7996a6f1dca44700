import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Queue } from "bullmq";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createJobWriter } from "../../src/queue/create-job-writer.ts";
import { createKeys } from "../../src/queue/keys.ts";
import { createRedis } from "../../src/queue/redis.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { type RedisCluster, startRedisCluster } from "../helpers/redis-cluster.ts";
import { startTestRuntime, type TestRuntime } from "../helpers/test-runtime.ts";

let cluster: RedisCluster;
let t: TestRuntime | undefined;

beforeAll(async () => {
  cluster = await startRedisCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe("on a three-master Redis Cluster", () => {
  it("keeps each queue's keys in one slot, so its scripts run on one shard", async () => {
    const keys = createKeys("shipbot");
    const slot = async (key: string) =>
      Number(
        (
          await promisify(execFile)("redis-cli", ["-p", String(cluster.ports[0]), "cluster", "keyslot", key])
        ).stdout.trim(),
      );
    const ops = await slot(keys.lease("api", "staging"));
    for (const key of [
      keys.line("api", "staging"),
      keys.job("j1"),
      keys.bullJob("j1"),
      keys.audit,
      keys.cards,
      keys.locks,
      keys.approvals,
    ]) {
      expect(await slot(key)).toBe(ops);
    }
  });

  it("runs one operation per target at a time, supersedes, and ends every card final", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, redisUrl: cluster.url });
    const first = await t.runtime.handle(chatCommand("/deploy api staging v2", demoUser));
    expect(first.error?.message).toBeUndefined();
    await gated.started(1);
    const second = await t.runtime.handle(chatCommand("/deploy api staging v3", demoUser));
    await t.waitForPhase(second.jobIds[0] as string, ["waiting"]);
    const third = await t.runtime.handle(chatCommand("/deploy api staging v4", demoUser));
    await t.waitForPhase(second.jobIds[0] as string, ["superseded"]);
    gated.calls[0]?.finish();
    const [, next] = await gated.started(2);
    expect(next?.arg).toBe("ghcr.io/acme/api:v4");
    next?.finish();
    await t.waitForPhase(third.jobIds[0] as string, ["succeeded"]);
    expect(gated.calls).toHaveLength(2);
    // The notifier, on the cluster too, brings every card to its final state.
    const deadline = Date.now() + 10_000;
    const finals = () =>
      [...(t?.chat.cards.values() ?? [])].filter((c) =>
        ["success", "warning"].includes(c.versions.at(-1)?.tone ?? ""),
      );
    while (finals().length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(finals()).toHaveLength(3);
    expect(await t.runtime.audit.verify()).toMatchObject({ ok: true });
  });

  it("takes a redelivered command once", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, redisUrl: cluster.url });
    const a = await t.runtime.handle(chatCommand("/scale api staging 3", demoUser, "evt-cluster-1"));
    const b = await t.runtime.handle(chatCommand("/scale api staging 3", demoUser, "evt-cluster-1"));
    expect(b.jobIds).toEqual(a.jobIds);
    const [call] = await gated.started(1);
    call?.finish();
    await t.waitForPhase(a.jobIds[0] as string, ["succeeded"]);
    expect(gated.calls).toHaveLength(1);
  });

  it("queues a burst of commands in batched calls of BullMQ's add script on the queue's shard", async () => {
    const redis = createRedis({ url: cluster.url, role: "worker" });
    const queue = new Queue("{ops}", { connection: redis, prefix: "cw" });
    try {
      const writer = createJobWriter(queue, redis, { traced: false, batch: 4 });
      const job = (i: number) => ({
        name: "k8s.deploy",
        data: { kind: "deploy", service: `svc-${i}`, env: "staging" },
        opts: {
          jobId: `j${i}`,
          priority: 2,
          attempts: 3,
          backoff: { type: "exponential" as const, delay: 2_000 },
        },
      });
      await Promise.all(Array.from({ length: 10 }, (_, i) => writer.add(job(i))));
      expect(writer.direct).toBe(true);
      expect(await queue.getJobCounts("prioritized")).toEqual({ prioritized: 10 });
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      redis.disconnect();
    }
  });
});
