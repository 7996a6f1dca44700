/**
 * shipbot on Sentinel-managed Redis: a real master, replica and three Sentinels; a `shipbot worker` process
 * and an accepting runtime in the test, both given only the `redis-sentinel://` URL. A job runs; then the
 * Sentinels fail over to the replica, and a command accepted as soon as they name the new master runs on it,
 * and stays there after the old master has been turned into a replica.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import { type CliStack, startCliStack, waitUntil } from "../helpers/cli-stack.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { type RedisSentinelSet, startRedisSentinel } from "../helpers/redis-sentinel.ts";

let sentinel: RedisSentinelSet;
let stack: CliStack | undefined;

beforeAll(async () => {
  sentinel = await startRedisSentinel({ sentinels: 3 });
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await sentinel?.stop();
});

async function portOf(redis: Redis): Promise<number> {
  return Number(/tcp_port:(\d+)/.exec(await redis.info("server"))?.[1]);
}

describe("on Redis with Sentinel", () => {
  it("runs jobs through a redis-sentinel:// URL, and on the new master after a failover", async () => {
    const [master, replica] = sentinel.servers;
    stack = await startCliStack({
      emulator: {
        deployments: ["api", "web"].map((name) => ({
          namespace: "staging",
          name,
          image: `ghcr.io/acme/${name}:v1`,
          replicas: 2,
        })),
        stepMs: 100,
      },
      redisUrl: sentinel.url,
    });
    const { emulator, producer } = stack;
    const worker = stack.start(["worker"]);
    const waitFor = <T>(what: string, probe: () => Promise<T | undefined>) =>
      waitUntil(what, probe, 45_000).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}\n--- worker:\n${worker.output().slice(-2_000)}`);
      });
    const finalState = (jobId: string) => async () => {
      const state = await producer.status.read(jobId).catch(() => undefined);
      return state && terminalPhases.has(state.phase) ? state : undefined;
    };

    expect(await sentinel.masterPort()).toBe(master.port);
    expect(await portOf(producer.redis)).toBe(master.port);
    const first = await producer.handle(chatCommand("/deploy api staging v2", demoUser));
    expect(first.error?.message).toBeUndefined();
    const firstId = first.jobIds[0] as string;
    const done: JobState = await waitFor("the first job to end", finalState(firstId));
    expect(`${done.phase}: ${done.text}`).toMatch(/^succeeded: Deployed ghcr\.io\/acme\/api:v2 in \d+s$/);

    const newMaster = await sentinel.failover();
    expect(newMaster).toBe(replica.port);

    // The Sentinels have named the new master: shipbot follows at once, without waiting for the old
    // master to be demoted (a command written there now would be lost when it resyncs as a replica).
    await waitFor("the accepting connection to reach the new master", async () =>
      (await portOf(producer.redis).catch(() => 0)) === newMaster ? true : undefined,
    );
    const oldRole = new Redis({ port: master.port, host: "127.0.0.1", lazyConnect: true });
    try {
      expect(((await oldRole.call("ROLE")) as string[])[0]).toBe("master");
    } finally {
      oldRole.disconnect();
    }
    const second = await waitFor("a command to be accepted", async () => {
      const reply = await producer.handle(chatCommand("/deploy web staging v2", demoUser));
      return reply.error ? undefined : reply;
    });
    const secondId = second.jobIds[0] as string;
    const after: JobState = await waitFor("the second job to end", finalState(secondId));
    expect(`${after.phase}: ${after.text}`).toMatch(/^succeeded: Deployed ghcr\.io\/acme\/web:v2 in \d+s$/);

    // Once the old master is a replica of the new one, both jobs' records are still there: nothing was
    // written to the side that lost. Each operation reached the cluster once.
    await sentinel.waitForDemotion(master.port);
    expect((await producer.status.read(firstId))?.phase).toBe("succeeded");
    expect((await producer.status.read(secondId))?.phase).toBe("succeeded");
    const direct = new Redis({ port: newMaster, host: "127.0.0.1", lazyConnect: true });
    try {
      expect(await direct.exists(producer.keys.bullJob(secondId))).toBe(1);
    } finally {
      direct.disconnect();
    }
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(emulator.writes("staging", "web")).toBe(1);
    expect(emulator.deployment("staging", "web").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/web:v2",
    );
    expect(worker.child.exitCode).toBeNull();
  });
});
