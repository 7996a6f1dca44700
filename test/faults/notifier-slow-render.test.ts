/**
 * Promise 3: every card ends showing its job's final state, even when one render takes longer than the
 * notifier's claim on the card (a chat edit that hangs for over a minute). Meanwhile another claim shows
 * the final state; the slow edit then lands with its older state, and the card must not stay there.
 * Two notifiers on the real Redis, a chat port whose edit hangs until the test lets it through.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Card } from "../../src/core/card.ts";
import type { Conversation } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";
import type { ExecutorPort } from "../../src/executors/port.ts";
import type { ChatPort } from "../../src/notify/chat-port.ts";
import { waitUntil } from "../helpers/cli-stack.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import {
  createRecordingChat,
  quietLog,
  redisUrl,
  startTestRuntime,
  type TestRuntime,
} from "../helpers/test-runtime.ts";

let t: TestRuntime | undefined;
let worker: Runtime | undefined;
afterEach(async () => {
  await worker?.close();
  worker = undefined;
  await t?.close();
  t = undefined;
});

/** A recording chat whose next edit, once armed, waits for `release` before it reaches the platform. */
function createSlowChat() {
  const chat = createRecordingChat();
  let armed: "post" | "update" | undefined;
  let hung: { card: Card; release(): void } | undefined;
  /** Waits for the test when this is the call that was armed. */
  async function maybeHang(call: "post" | "update", card: Card): Promise<void> {
    if (armed !== call) return;
    armed = undefined;
    await new Promise<void>((release) => {
      hung = { card, release };
    });
  }
  const port: ChatPort = {
    async post(conversation: Conversation, card: Card, token?: string) {
      await maybeHang("post", card);
      return chat.post(conversation, card, token);
    },
    async update(conversation, ref, card) {
      await maybeHang("update", card);
      await chat.update(conversation, ref, card);
    },
  };
  return {
    port,
    cards: chat.cards,
    hangNext(call: "post" | "update") {
      armed = call;
    },
    hung: () => hung,
  };
}

/** A second process that runs the jobs and keeps cards too (the other notifier). */
function startWorker(runtime: TestRuntime, executor: ExecutorPort, chat: ChatPort): Promise<Runtime> {
  return createRuntime({
    config: runtime.config,
    redisUrl,
    executor,
    chats: { slack: chat },
    log: quietLog,
    accept: false,
    work: true,
    notify: true,
  });
}

async function storedRefOf(runtime: TestRuntime, jobId: string) {
  const stored = await runtime.runtime.redis.get(runtime.runtime.keys.cardRef(jobId));
  return stored ? (JSON.parse(stored) as { ref: string; seq: number }) : undefined;
}

const deploy = () => ({
  ...chatCommand("/deploy api staging v2", demoUser),
  conversation: { platform: "slack" as const, channel: "C0SLOW01" },
});

describe("a render that outlasts its claim", () => {
  it("leaves the card showing the final state when a slow edit of an older state lands after it", async () => {
    const chat = createSlowChat();
    const gated = createGatedExecutor();
    // The first notifier keeps cards and records; jobs wait for the second process, so the card is
    // posted in its queued state before the job runs.
    t = await startTestRuntime({ executor: gated.executor, work: false, chats: { slack: chat.port } });
    const keys = t.runtime.keys;
    const reply = await t.runtime.handle(deploy());
    const jobId = reply.jobIds[0] as string;
    const storedRef = () => storedRefOf(t as TestRuntime, jobId);
    const posted = await waitUntil("the queued card", storedRef, 10_000);
    const message = chat.cards.get(posted.ref);

    // The edit showing "running" hangs (a chat call stuck for longer than the claim).
    chat.hangNext("update");
    worker = await startWorker(t, gated.executor, chat.port);
    const [run] = await gated.started(1);
    const hung = await waitUntil("the slow edit", async () => chat.hung(), 10_000);
    expect(hung.card.tone).toBe("running");

    run?.finish();
    const done = await t.waitForPhase(jobId, ["succeeded"]);
    // The slow render's claim runs out (a minute in production): end it now, as the deadline would.
    await t.runtime.redis.zadd(keys.cardsInflight, "XX", Date.now(), jobId);
    await waitUntil(
      "another render to show the final state",
      async () => ((await storedRef())?.seq === done.seq ? true : undefined),
      10_000,
    );
    expect(message?.versions.at(-1)).toEqual(renderJobCard(done));

    // The slow edit reaches the platform now, with the older state.
    hung.release();
    await waitUntil(
      "the slow edit to land",
      async () => (message?.versions.includes(hung.card) ? true : undefined),
      5_000,
    );
    const final = await waitUntil(
      "the card to show the final state again",
      async () => {
        const stored = await storedRef();
        const shown = message?.versions.at(-1);
        return stored?.seq === done.seq && shown?.tone !== "running" ? shown : undefined;
      },
      5_000,
    ).catch(() => message?.versions.at(-1));
    expect(final).toEqual(renderJobCard(done));
    expect((await storedRef())?.seq).toBe(done.seq);
    // One message: queued, final, the late "running", then the final state again.
    expect(chat.cards.size).toBe(1);
    expect(message?.versions.map((v) => v.tone)).toEqual(["pending", "success", "running", "success"]);
  });

  it("keeps the card's reference on the message showing the final state when a slow first post lands after another", async () => {
    const chat = createSlowChat();
    const gated = createGatedExecutor();
    chat.hangNext("post");
    t = await startTestRuntime({ executor: gated.executor, work: false, chats: { slack: chat.port } });
    const keys = t.runtime.keys;
    const jobId = (await t.runtime.handle(deploy())).jobIds[0] as string;
    const hung = await waitUntil("the slow post", async () => chat.hung(), 10_000);
    expect(hung.card.tone).toBe("pending");

    worker = await startWorker(t, gated.executor, chat.port);
    const [run] = await gated.started(1);
    run?.finish();
    const done = await t.waitForPhase(jobId, ["succeeded"]);
    await t.runtime.redis.zadd(keys.cardsInflight, "XX", Date.now(), jobId);
    // This chat offers no lookup, so the other claim posts the card itself.
    const ref = await waitUntil(
      "another render to post the final state",
      async () => {
        const stored = await storedRefOf(t as TestRuntime, jobId);
        return stored?.seq === done.seq ? stored.ref : undefined;
      },
      10_000,
    );

    // The slow post lands: an older copy of the card.
    hung.release();
    await waitUntil("the slow post to land", async () => (chat.cards.size === 2 ? true : undefined), 5_000);
    await sleep(500);
    // The card stays the message that shows the final state: a later edit goes there, not to the copy.
    expect(await storedRefOf(t, jobId)).toEqual({ ref, seq: done.seq });
    expect(chat.cards.get(ref)?.versions.at(-1)).toEqual(renderJobCard(done));
  });
});
