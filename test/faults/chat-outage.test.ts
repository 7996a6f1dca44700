/**
 * Promise: every failure is visible to a person, even when the chat platform is down for a while. The
 * Slack API (emulator) answers 500s and leaves requests hanging for a stretch, then recovers: every job's
 * final state still reaches its card, each card is one message (no duplicate posts), with the right text.
 * The real Web API client and Slack chat port are used, as in test/e2e/slack.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderBlocks } from "../../src/adapters/slack/index.ts";
import type { Runtime } from "../../src/bin/create-runtime.ts";
import { ShipbotError } from "../../src/core/errors.ts";
import { type ChatCommand, type JobState, terminalPhases } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";
import { type SlackEmulator, startSlackEmulator } from "../emulators/slack/index.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { type SlackRuntime, startSlackRuntime } from "../helpers/slack-runtime.ts";
import { waitUntil } from "../helpers/wait-for.ts";

const botToken = "xoxb-test-token";
/** Slack's limits run 20× faster in the emulator; shipbot's pacing is scaled to match. */
const timeScale = 0.05;
const channel = "C0OUTAGE";

let slack: SlackEmulator;
let stack: SlackRuntime;
let runtime: Runtime;
const gated = createGatedExecutor();

beforeAll(async () => {
  slack = await startSlackEmulator({
    botToken,
    timeScale,
    channels: [channel],
    // A Marketplace app's Tier 3 for the lookups after failed posts (apps outside it get 1 a minute).
    limits: {
      "conversations.history": { kind: "window", limit: 50, windowMs: 60_000 },
    },
  });
  stack = await startSlackRuntime({
    slack,
    botToken,
    executor: gated,
    pace: { postIntervalMs: 1100 * timeScale, updateIntervalMs: 1250 * timeScale },
  });
  runtime = stack.runtime;
});

afterAll(async () => {
  await stack?.close();
  await slack?.close();
});

/** The outages here last seconds: each wait allows more than the default. */
const waitLong = <T>(what: string, probe: () => Promise<T | undefined>) => waitUntil(what, probe, 25_000);

function slackCommand(text: string): ChatCommand {
  return { ...chatCommand(text, demoUser), conversation: { platform: "slack", channel } };
}

const finalState = (jobId: string) => () =>
  runtime.status.read(jobId).then((s) => (s && terminalPhases.has(s.phase) ? s : undefined));

describe("every failure is visible to a person: chat outages", () => {
  it("delivers every job's final state once Slack recovers, one message per card, with the final text", async () => {
    // The outage, part one: posts answer 500 (one HTTP call per notifier attempt: the client never
    // retries a post) while the jobs are queued and start.
    slack.failNext("chat.postMessage", 500, 3);
    const texts = ["/deploy api staging v2", "/deploy web staging v2"];
    const jobIds: string[] = [];
    for (const text of texts) {
      const reply = await runtime.handle(slackCommand(text));
      expect(reply.error?.message).toBeUndefined();
      jobIds.push(reply.jobIds[0] as string);
    }
    const calls = await gated.started(2);
    await waitLong("every card to be posted", async () => {
      for (const id of jobIds) if (!(await stack.cardRef(id))) return undefined;
      return true;
    });

    // Part two: every edit hangs until the client gives up, while the jobs finish.
    slack.failNext("chat.update", "timeout", 4);
    for (const call of calls) call.finish();
    const states: JobState[] = [];
    for (const id of jobIds) states.push(await waitLong(`job ${id} to end`, finalState(id)));
    expect(states.map((s) => s.phase)).toEqual(["succeeded", "succeeded"]);

    // After the outage, each card catches up with its job's final state.
    const refs = await waitLong("every card to show its final state", () => stack.finalCards(states));

    // The outage really happened as arranged.
    expect(slack.calls("chat.postMessage").filter((c) => c.status === 500)).toHaveLength(3);
    expect(slack.calls("chat.update").filter((c) => c.status === 0)).toHaveLength(4);

    // One message per job, no duplicates, each showing the final state as shipbot renders it.
    expect(slack.messages(channel)).toHaveLength(jobIds.length);
    expect(new Set(refs).size).toBe(jobIds.length);
    for (const [i, s] of states.entries()) {
      const message = slack.message(channel, refs[i] as string);
      expect(message?.text).toBe(renderBlocks(renderJobCard(s)).text);
    }
  });

  it("shows a failed job's reason after chat.update fails for a stretch in the middle of the job", async () => {
    const before = slack.messages(channel).length;
    const reply = await runtime.handle(slackCommand("/deploy web staging v3"));
    expect(reply.error?.message).toBeUndefined();
    const jobId = reply.jobIds[0] as string;
    const call = await waitLong("the operation to start", async () =>
      gated.calls.find((c) => c.ctx.jobId === jobId),
    );
    await waitLong("the card to be posted", () => stack.cardRef(jobId));
    // Slack fails every edit for a stretch; meanwhile the job fails for good. The failure, not only
    // success, must reach the person.
    slack.failNext("chat.update", 503, 6);
    call.fail(new ShipbotError("upstream", "registry refused the image", { retryable: false }));

    const failed = await waitLong("the job to end", finalState(jobId));
    expect(failed.phase).toBe("failed");
    expect(failed.text).toContain("registry refused the image");
    const ref = await waitLong("the card to show the failure", async () => {
      const stored = await stack.cardRef(jobId);
      return stored && stored.seq >= failed.seq ? stored.ref : undefined;
    });
    expect(slack.calls("chat.update").filter((c) => c.status === 503)).toHaveLength(6);
    expect(slack.messages(channel)).toHaveLength(before + 1);
    expect(slack.message(channel, ref)?.text).toBe(renderBlocks(renderJobCard(failed)).text);
  });

  it("posts a card once when Slack applies the post but the answer is lost, and keeps editing that message", async () => {
    const before = slack.messages(channel).length;
    const postsBefore = slack.calls("chat.postMessage").length;
    // Slack stores the message, then the answer never arrives: the client times out.
    slack.failNext("chat.postMessage", "lost", 1);
    const reply = await runtime.handle(slackCommand("/deploy api staging v4"));
    expect(reply.error?.message).toBeUndefined();
    const jobId = reply.jobIds[0] as string;
    const call = await waitLong("the operation to start", async () =>
      gated.calls.find((c) => c.ctx.jobId === jobId),
    );
    const posted = await waitLong("the card reference to be stored", () => stack.cardRef(jobId));
    call.finish();
    const done = await waitLong("the job to end", finalState(jobId));
    await waitLong("the card to show the final state", async () => {
      const stored = await stack.cardRef(jobId);
      return stored && stored.seq >= done.seq ? stored : undefined;
    });

    // The post was applied once and answered never; the notifier found that message instead of posting again.
    const posts = slack.calls("chat.postMessage").slice(postsBefore);
    expect(posts.map((c) => c.status)).toEqual([0]);
    expect(slack.calls("conversations.history").length).toBeGreaterThan(0);
    expect(slack.messages(channel)).toHaveLength(before + 1);
    const message = slack.message(channel, posted.ref);
    expect(message?.metadata?.event_type).toBe("shipbot_card");
    expect(message?.text).toBe(renderBlocks(renderJobCard(done)).text);
    // Nothing is left that would make a later render look again.
    expect(await runtime.redis.exists(`${runtime.keys.cardRef(jobId)}:posting`)).toBe(0);
  });
});
