import { isDeepStrictEqual } from "node:util";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { JobState } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";
import { createDeriver, type Deriver } from "../../src/notify/create-deriver.ts";
import { createRedis } from "../../src/queue/redis.ts";
import { chatCommand } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";
import { redisUrl, startTestRuntime, type TestRuntime, testConfig } from "../helpers/test-runtime.ts";

/**
 * Job records come from BullMQ's event stream, read through a consumer group. Two ways a records process
 * can lose events, and how they come back:
 * - it is down while workers go on (`worker --no-cards` elsewhere) long enough for the stream to be
 *   trimmed past what it read: the finished jobs' events are gone, and it must still give each its final
 *   state, ledger entry, history and card when it comes back;
 * - it read a batch and died before acknowledging it: another reader must take the batch over;
 * - it runs, but falls so far behind (its reads stalled, or an alert storm) that the stream is trimmed
 *   past events it has not read: it must notice the loss while running, not only when it restarts.
 */

const started: TestRuntime[] = [];
const derivers: Deriver[] = [];
const proxies: TcpProxy[] = [];
afterEach(async () => {
  for (const d of derivers.splice(0)) await d.close();
  for (const p of proxies.splice(0)) await p.close();
  for (const t of started.splice(0)) await t.close();
});

describe("records when events are lost to a trim or a dead reader", () => {
  it("a returning records process gives every job that finished meanwhile its final state, ledger entry, history and card", async () => {
    const config = testConfig();
    const gated = createGatedExecutor();
    // Jobs only: accepts and runs operations, keeps no records and renders no cards.
    const jobs = await startTestRuntime({ executor: gated.executor, config, notify: false });
    started.push(jobs);

    const ids: string[] = [];
    for (const text of ["/deploy api staging v2", "/deploy web staging v2", "/scale api staging 3"]) {
      const reply = await jobs.runtime.handle(chatCommand(text));
      expect(reply.error?.message).toBeUndefined();
      ids.push(reply.jobIds[0] as string);
    }
    const calls = await gated.started(2);
    for (const call of calls) call.finish();
    (await gated.started(3))[2]?.finish();
    const redis = jobs.runtime.redis;
    const keys = jobs.runtime.keys;
    for (let i = 0; i < 400 && (await redis.zcard(`${keys.bullPrefix}completed`)) < 3; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(await redis.zcard(`${keys.bullPrefix}completed`)).toBe(3);
    // Nobody derived the ends: the jobs still read as running.
    for (const id of ids) expect((await jobs.runtime.status.read(id))?.phase).not.toBe("succeeded");

    // The stream is trimmed before anyone read it.
    await redis.xtrim(keys.opsEvents, "MAXLEN", 0);
    expect(await redis.xlen(keys.opsEvents)).toBe(0);

    // The records process comes back (no worker of its own).
    const records = await startTestRuntime({ executor: gated.executor, config, work: false, notify: true });
    started.push(records);
    for (const id of ids) await records.waitForPhase(id, ["succeeded"]);

    const ledger = await redis.xrange(keys.audit, "-", "+");
    for (const id of ids) {
      const ends = ledger.filter(([, f]) => f.includes("job.succeeded") && f.includes(id));
      expect(ends, `one job.succeeded entry for ${id}`).toHaveLength(1);
    }
    const history = await records.runtime.handle(chatCommand("/history api staging"));
    expect(history.card?.lines.filter((l) => l.includes("succeeded"))).toHaveLength(2);
    // Each job has one card in chat, and it shows the job's final state.
    const cardOf = (id: string) =>
      [...records.chat.cards.values()].filter((c) => c.versions[0]?.footer?.includes(`job ${id} `));
    // A card may first show the running state the worker left (its edit to the end follows at Slack's
    // pace): what counts is that each job has one card and it ends showing the job's final state.
    const finalShown = async (id: string) => {
      const state = await records.runtime.status.read(id);
      const cards = cardOf(id);
      return (
        cards.length === 1 && isDeepStrictEqual(cards[0]?.versions.at(-1), renderJobCard(state as JobState))
      );
    };
    for (let i = 0; i < 400; i++) {
      const shown = await Promise.all(ids.map(finalShown));
      if (shown.every(Boolean)) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const id of ids) {
      const state = await records.runtime.status.read(id);
      expect(cardOf(id)).toHaveLength(1);
      expect(cardOf(id)[0]?.versions.at(-1)).toEqual(renderJobCard(state as JobState));
    }
  });

  it("a batch read by a reader that died before acknowledging it is taken over by another", async () => {
    const config = testConfig();
    const gated = createGatedExecutor();
    // Accepts commands only: jobs wait in the queue, their "added" events in the stream.
    const accept = await startTestRuntime({ executor: gated.executor, config, work: false, notify: false });
    started.push(accept);
    const { redis, keys } = accept.runtime;
    const ids: string[] = [];
    for (const text of ["/deploy api staging v2", "/deploy web staging v2"]) {
      ids.push((await accept.runtime.handle(chatCommand(text))).jobIds[0] as string);
    }
    // A records process reads the batch and dies before acknowledging it.
    await redis.xgroup("CREATE", keys.opsEvents, "shipbot-deriver", "0", "MKSTREAM");
    await redis.call(
      "XREADGROUP",
      "GROUP",
      "shipbot-deriver",
      "dead",
      "COUNT",
      500,
      "STREAMS",
      keys.opsEvents,
      ">",
    );
    // Each job's "added" and "waiting" events are now the dead reader's, unacknowledged.
    expect(((await redis.xpending(keys.opsEvents, "shipbot-deriver")) as [number])[0]).toBe(4);
    for (const id of ids) expect((await accept.runtime.status.read(id))?.phase).not.toBe("queued");

    // Another records process takes the batch over once it has sat unacknowledged (30 s in production).
    derivers.push(
      createDeriver({
        redis: createRedis({ url: redisUrl, role: "worker" }),
        keys,
        queue: accept.runtime.ops.queue,
        log: pino({ level: "silent" }),
        consumer: "live",
        blockMs: 100,
        claimIdleMs: 200,
      }),
    );
    for (const id of ids) expect((await accept.waitForPhase(id, ["queued"])).text).toBe("Queued");
    const ledger = await redis.xrange(keys.audit, "-", "+");
    for (const id of ids)
      expect(ledger.filter(([, f]) => f.includes("job.queued") && f.includes(id))).toHaveLength(1);
    for (let i = 0; i < 200; i++) {
      const [pending] = (await redis.xpending(keys.opsEvents, "shipbot-deriver")) as [number];
      if (pending === 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(((await redis.xpending(keys.opsEvents, "shipbot-deriver")) as [number])[0]).toBe(0);
  });

  it("a running records process that fell behind a trim notices the lost events and still records every job's end", async () => {
    const config = testConfig();
    const gated = createGatedExecutor();
    // Jobs only; the records come from one reader whose connection goes through a proxy.
    const jobs = await startTestRuntime({ executor: gated.executor, config, notify: false });
    started.push(jobs);
    const { redis, keys } = jobs.runtime;
    const proxy = await startTcpProxy(Number(new URL(redisUrl).port || 6379));
    proxies.push(proxy);
    derivers.push(
      createDeriver({
        redis: createRedis({ url: `redis://127.0.0.1:${proxy.port}`, role: "worker" }),
        keys,
        queue: jobs.runtime.ops.queue,
        log: pino({ level: "silent" }),
        consumer: "behind",
        blockMs: 100,
        lossCheckEvery: 2,
      }),
    );
    const run = async (text: string, nth: number): Promise<string> => {
      const reply = await jobs.runtime.handle(chatCommand(text));
      expect(reply.error?.message).toBeUndefined();
      (await gated.started(nth))[nth - 1]?.finish();
      return reply.jobIds[0] as string;
    };
    // The reader keeps up at first.
    const first = await run("/deploy api staging v2", 1);
    await jobs.waitForPhase(first, ["succeeded"]);

    // Its reads stop reaching Redis; two jobs run and finish, and their events are trimmed unread.
    proxy.hold();
    await new Promise((r) => setTimeout(r, 300));
    const lost = [await run("/deploy web staging v2", 2), await run("/scale api staging 3", 3)];
    for (let i = 0; i < 400 && (await redis.zcard(`${keys.bullPrefix}completed`)) < 3; i++)
      await new Promise((r) => setTimeout(r, 25));
    await redis.xtrim(keys.opsEvents, "MAXLEN", 0);
    for (const id of lost) expect((await jobs.runtime.status.read(id))?.phase).not.toBe("succeeded");

    proxy.release();
    for (const id of lost) await jobs.waitForPhase(id, ["succeeded"], 10_000);
    const ledger = await redis.xrange(keys.audit, "-", "+");
    for (const id of [first, ...lost])
      expect(ledger.filter(([, f]) => f.includes("job.succeeded") && f.includes(id))).toHaveLength(1);
  });
});
