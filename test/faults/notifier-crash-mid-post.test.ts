/**
 * Promise: no card is posted twice and every card ends showing its job's final state, even when the
 * process posting it dies at the worst moment: Slack has applied the `chat.postMessage` but the answer (the
 * message's ts) never reached the notifier, which is killed with SIGKILL before it could store the
 * reference. Another notifier process finishes the card: it finds the marker the dead one left, looks the
 * message up in Slack by the token in its metadata, and edits that message instead of posting again.
 * Real `shipbot worker` processes, the Slack Web API emulator and the Kubernetes emulator.
 */
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { renderBlocks } from "../../src/adapters/slack/index.ts";
import type { Runtime } from "../../src/bin/create-runtime.ts";
import { terminalPhases } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";
import type { KubeEmulator } from "../emulators/kubernetes/server.ts";
import { type SlackEmulator, startSlackEmulator } from "../emulators/slack/index.ts";
import { type CliStack, slackEnv, startCliStack, waitUntil } from "../helpers/cli-stack.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import type { ShipbotProcess } from "../helpers/spawn-shipbot.ts";
import { redisUrl } from "../helpers/test-runtime.ts";

const botToken = "xoxb-test-token";
const timeScale = 0.05;
const channel = "C0CRASH01";

let slack: SlackEmulator;
let stack: CliStack;
let emulator: KubeEmulator;
let producer: Runtime;
const processes: ShipbotProcess[] = [];

beforeEach(async () => {
  slack = await startSlackEmulator({ botToken, timeScale, channels: [channel] });
  stack = await startCliStack({
    emulator: {
      deployments: [
        {
          namespace: "staging",
          name: "api",
          image: "ghcr.io/acme/api:v1.0.0",
          previousImages: ["ghcr.io/acme/api:v0.9.0"],
          replicas: 2,
        },
      ],
      stepMs: 200,
    },
    env: slackEnv({ apiUrl: `${slack.url}/api/`, botToken, timeScale }),
  });
  ({ emulator, producer } = stack);
});

afterEach(async () => {
  processes.length = 0;
  await stack?.close();
  await slack?.close();
});

function start(args: string[]): ShipbotProcess {
  const p = stack.start(args);
  processes.push(p);
  return p;
}

function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 25_000): Promise<T> {
  return waitUntil(what, probe, timeoutMs).catch((error: unknown) => {
    const tails = processes.map((p, i) => `--- process ${i}:\n${p.output().slice(-1_500)}`);
    throw new Error(`${(error as Error).message}\n${tails.join("\n")}`);
  });
}

describe("no card is posted twice: the notifier dies between posting a card and storing its reference", () => {
  it("lets another notifier find the posted message and finish the card in it", async () => {
    start(["worker", "--no-cards"]);
    const first = start(["worker", "--no-jobs"]);
    // Slack stores the card's message, and its answer never comes back: the notifier waits for it (its
    // client gives up only after 10 s) and is killed meanwhile.
    slack.failNext("chat.postMessage", "lost", 1);
    const reply = await producer.handle({
      ...chatCommand("/deploy api staging v2", demoUser),
      conversation: { platform: "slack", channel },
    });
    expect(reply.error?.message).toBeUndefined();
    const jobId = reply.jobIds[0] as string;

    const [posted] = await waitFor("Slack to apply the post", async () => {
      const messages = slack.messages(channel);
      return messages.length > 0 && slack.calls("chat.postMessage").length > 0 ? messages : undefined;
    });
    first.child.kill("SIGKILL");
    await first.exited;
    // The crash landed in the gap: applied by Slack, never answered, never looked up, no reference stored.
    expect(slack.calls("chat.postMessage").map((c) => c.status)).toEqual([0]);
    expect(slack.calls("conversations.history")).toHaveLength(0);
    const redis = new Redis(redisUrl);
    try {
      const cardKey = producer.keys.cardRef(jobId);
      expect(await redis.exists(cardKey)).toBe(0);
      expect(await redis.exists(`${cardKey}:posting`)).toBe(1);
      // The dead process still holds its claim on the card until the claim's deadline (a minute): end it
      // now, as the deadline passing would.
      await redis.zadd(producer.keys.cardsInflight, "XX", Date.now(), jobId);

      // A new notifier process (it also records the job's final state, as the dead one would have).
      start(["worker", "--no-jobs"]);
      const done = await waitFor("the job to end", () =>
        producer.status.read(jobId).then((s) => (s && terminalPhases.has(s.phase) ? s : undefined)),
      );
      expect(done.phase).toBe("succeeded");
      const ref = await waitFor("the card to show the final state", async () => {
        const stored = await redis.get(cardKey);
        const parsed = stored ? (JSON.parse(stored) as { ref: string; seq: number }) : undefined;
        return parsed && parsed.seq >= done.seq ? parsed.ref : undefined;
      });

      // One message: the one the dead notifier posted, found again and edited to the final state.
      expect(ref).toBe(posted?.ts);
      expect(slack.messages(channel).map((m) => m.ts)).toEqual([ref]);
      expect(slack.message(channel, ref)?.text).toBe(renderBlocks(renderJobCard(done)).text);
      expect(slack.message(channel, ref)?.metadata?.event_type).toBe("shipbot_card");
      expect(slack.calls("chat.postMessage")).toHaveLength(1);
      expect(slack.calls("conversations.history").length).toBeGreaterThan(0);
      expect(await redis.exists(`${cardKey}:posting`)).toBe(0);
      expect(emulator.writes("staging", "api")).toBe(1);
    } finally {
      await redis.quit();
    }
  });
});
