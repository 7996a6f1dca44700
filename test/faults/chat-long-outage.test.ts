/**
 * Promise: every failure is visible to a person, however long the chat platform is down. A job ends while
 * every chat call fails for longer than the notifier's old budget of twenty attempts (seven minutes at
 * shipbot's backoff; here the backoff is shortened, the number of failures is what matters): once chat
 * recovers, the card still shows the final state, in the message posted at first.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { ShipbotError } from "../../src/core/errors.ts";
import type { JobData } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";
import type { ChatPort } from "../../src/notify/chat-port.ts";
import { createNotifier, type Notifier } from "../../src/notify/create-notifier.ts";
import { createStatusStore } from "../../src/notify/status-store.ts";
import { createKeys } from "../../src/queue/keys.ts";
import { createRedis } from "../../src/queue/redis.ts";
import { createRecordingChat, quietLog, redisUrl } from "../helpers/test-runtime.ts";
import { waitUntil } from "../helpers/wait-for.ts";

const prefix = `t${randomBytes(5).toString("hex")}`;
const keys = createKeys(prefix);
const redis = createRedis({ url: redisUrl, role: "worker" });
const status = createStatusStore(redis, keys);
const recording = createRecordingChat();
let down = false;
let refused = 0;
/** The recording chat, failing every call as an unreachable platform does while `down`. */
const chat: ChatPort = {
  async post(conversation, card, token) {
    if (down) throw unreachable();
    return recording.post(conversation, card, token);
  },
  async update(conversation, ref, card) {
    if (down) throw unreachable();
    return recording.update(conversation, ref, card);
  },
};
function unreachable(): ShipbotError {
  refused++;
  return new ShipbotError("upstream", "chat could not be reached; will try again", { retryable: true });
}
let notifier: Notifier;
const notifierRedis = redis.duplicate();

beforeAll(() => {
  notifier = createNotifier({
    redis: notifierRedis,
    keys,
    status,
    chats: { shell: chat },
    log: quietLog,
    idleMs: 5,
    retry: { firstDelayMs: 5, maxDelayMs: 20 },
  });
});

afterAll(async () => {
  down = false;
  await notifier?.close();
  await notifierRedis.quit();
  await cleanupPrefix(redis, prefix);
  await redis.quit();
});

/** A job as the accept path leaves it: BullMQ's job hash with its payload (the first transition copies it). */
async function createJob(jobId: string): Promise<void> {
  const data: JobData = {
    kind: "deploy",
    service: "api",
    env: "staging",
    version: "v2",
    requestedBy: { id: "shell:demo", name: "demo" },
    conversation: { platform: "shell", channel: "test" },
    commandId: jobId,
    requestedAt: Date.now(),
    traceId: jobId,
  };
  await redis.hset(keys.bullJob(jobId), "data", JSON.stringify(data));
}

describe("every failure is visible to a person: a long chat outage", () => {
  it("shows a job's final state after chat failed more than twenty attempts in a row", async () => {
    const jobId = "long-outage-1";
    await createJob(jobId);
    await status.emit(jobId, { phase: "running", text: "Rolling out" });
    const [posted] = await waitUntil("the running card", async () =>
      recording.cards.size === 1 ? [...recording.cards.values()] : undefined,
    );

    // Chat goes down, and the job fails for good while it is.
    down = true;
    await status.emit(jobId, { phase: "failed", text: "Failed: registry refused the image" });
    // The outage lasts past thirty refusals, or two seconds (a notifier that gave up tries no more).
    const outageEnds = Date.now() + 2_000;
    while (refused < 30 && Date.now() < outageEnds) await sleep(10);
    down = false;

    const failed = await status.read(jobId);
    expect(failed?.phase).toBe("failed");
    const shown = await waitUntil("the card to show the failure", async () => {
      const last = posted?.versions.at(-1);
      return last?.tone === "failure" ? last : undefined;
    });
    expect(shown).toEqual(renderJobCard(failed as NonNullable<typeof failed>));
    // The message posted at first, edited: no second card.
    expect(recording.cards.size).toBe(1);
  });
});
