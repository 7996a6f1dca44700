/**
 * Promise: every job's card reaches its state promptly through a burst of 429s, and a 429 delays the card
 * it answered, never the others. Slack (emulator, real limits: conversations.history is Tier 1, one call
 * a minute for apps outside the Marketplace) answers posts 429; shipbot's real Web API client and Slack
 * chat port, as shipbot wires them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderBlocks } from "../../src/adapters/slack/index.ts";
import type { Runtime } from "../../src/bin/create-runtime.ts";
import { type ChatCommand, type JobState, terminalPhases } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";
import { type SlackEmulator, startSlackEmulator } from "../emulators/slack/index.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { type SlackRuntime, startSlackRuntime } from "../helpers/slack-runtime.ts";
import { waitUntil } from "../helpers/wait-for.ts";

const botToken = "xoxb-test-token";
const burstChannel = "C0BURST";
const lookupChannel = "C0LOOKUP";

let slack: SlackEmulator;
let stack: SlackRuntime;
let runtime: Runtime;
const gated = createGatedExecutor();

beforeAll(async () => {
  slack = await startSlackEmulator({ botToken, channels: [burstChannel, lookupChannel] });
  stack = await startSlackRuntime({ slack, botToken, executor: gated });
  runtime = stack.runtime;
});

afterAll(async () => {
  await stack?.close();
  await slack?.close();
});

function slackCommand(text: string, channel: string): ChatCommand {
  return { ...chatCommand(text, demoUser), conversation: { platform: "slack", channel } };
}

async function queue(text: string, channel: string): Promise<string> {
  const reply = await runtime.handle(slackCommand(text, channel));
  expect(reply.error?.message).toBeUndefined();
  return reply.jobIds[0] as string;
}

describe("a 429 delays only the card it answered", () => {
  it("posts cards refused with 429 once each, within seconds, without looking for them", async () => {
    // A burst: Slack refuses the next three posts. A 429 means nothing was posted, so there is nothing
    // to look for; a lookup here would cost Slack's one conversations.history call a minute per card.
    slack.failNext("chat.postMessage", 429, 3);
    const jobIds = [
      await queue("/deploy api staging v2", burstChannel),
      await queue("/deploy web staging v2", burstChannel),
    ];
    for (const call of await gated.started(2)) call.finish();
    const states: JobState[] = [];
    for (const id of jobIds)
      states.push(
        await waitUntil(`job ${id} to end`, async () => {
          const s = await runtime.status.read(id);
          return s && terminalPhases.has(s.phase) ? s : undefined;
        }),
      );

    const refs = await waitUntil("both cards to show the final state", () => stack.finalCards(states));

    expect(slack.calls("chat.postMessage").filter((c) => c.status === 429)).toHaveLength(3);
    expect(slack.calls("conversations.history")).toHaveLength(0);
    expect(slack.messages(burstChannel)).toHaveLength(2);
    for (const [i, s] of states.entries())
      expect(slack.message(burstChannel, refs[i] as string)?.text).toBe(renderBlocks(renderJobCard(s)).text);
  });

  it("posts another card in the channel at once while a lost post's lookup waits out its 429", async () => {
    // Slack's budget for lookups (one a minute) is spent (by this call, or already), then a post is
    // applied and its answer lost: that card must look before posting again, and its lookup is answered
    // 429 for most of a minute.
    const spend = await fetch(`${slack.url}/api/conversations.history`, {
      method: "POST",
      headers: { authorization: `Bearer ${botToken}`, "content-type": "application/json" },
      body: JSON.stringify({ channel: lookupChannel }),
    });
    await spend.body?.cancel();
    slack.failNext("chat.postMessage", "lost", 1);
    const lost = await queue("/scale api staging 3", lookupChannel);
    await waitUntil("the lost post's lookup to be refused", async () =>
      slack.calls("conversations.history").some((c) => c.status === 429) ? true : undefined,
    );
    expect(await stack.cardRef(lost)).toBeUndefined();

    // Another job's card in the same channel is not held up by that lookup's wait.
    const other = await queue("/scale web staging 3", lookupChannel);
    const posted = await waitUntil("the other card to be posted", () => stack.cardRef(other), 5_000);
    expect(slack.message(lookupChannel, posted.ref)).toBeDefined();
    // The lost post is still the only message of its card: nothing was posted twice.
    expect(slack.messages(lookupChannel)).toHaveLength(2);
  });
});
