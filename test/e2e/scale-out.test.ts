/**
 * Scale-out end to end: `shipbot serve` ×2 and `shipbot worker` ×2 as separate OS processes on one Redis
 * (standalone, then a three-master Redis Cluster), Slack as the chat platform (the Slack emulator) and the
 * Kubernetes emulator as the cluster. Signed slash commands go alternately to the two serve processes; any
 * worker may run any job and render any card. Whatever process handled what, every job runs once, every
 * card is posted once and edited in place, and every card ends showing its job's final state.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config, ServiceConfig } from "../../src/core/config.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import { createJobId } from "../../src/queue/job-id.ts";
import { type SlackEmulator, type SlackMessage, startSlackEmulator } from "../emulators/slack/index.ts";
import { type CliStack, startCliStack, waitUntil } from "../helpers/cli-stack.ts";
import { freePort } from "../helpers/free-port.ts";
import { type RedisCluster, startRedisCluster } from "../helpers/redis-cluster.ts";
import { newTriggerId, sendSlackRequest, slashCommandBody } from "../helpers/slack-requests.ts";
import type { ShipbotProcess } from "../helpers/spawn-shipbot.ts";
import { redisUrl as localRedisUrl, testConfig } from "../helpers/test-runtime.ts";

const signingSecret = `scale-secret-${randomBytes(8).toString("hex")}`;
const botToken = "xoxb-test-token";
/** Slack's limits run 20× faster in the emulator; the processes' pacing is scaled to match. */
const timeScale = 0.05;
/** In the example configuration: may deploy and scale in staging. */
const dev = { id: "U0DEMO0001", name: "dev-1" };
const channels = ["C0SCALE1", "C0SCALE2", "C0SCALE3", "C0SCALE4"];
const services = Array.from({ length: 16 }, (_, i) => `svc${String(i + 1).padStart(2, "0")}`);
/** Every service is deployed; every other one is also scaled, which waits in line behind its deploy. */
const scaled = services.filter((_, i) => i % 2 === 0);

/** The example configuration with sixteen services in staging, and short lock and lease times. */
function scaleOutConfig(): Config {
  const base = testConfig({ lockDurationMs: 2_000, leaseTtlMs: 2_000, recheckMs: 300 });
  const service = (name: string): ServiceConfig => ({
    image: `ghcr.io/acme/${name}`,
    replicas: { min: 1, max: 10 },
    environments: { staging: { namespace: "staging" } },
  });
  return { ...base, services: Object.fromEntries(services.map((name) => [name, service(name)])) };
}

interface Sent {
  jobId: string;
  channel: string;
  service: string;
  /** What the card must end with. */
  expected: RegExp;
}

async function runScaleOut(redisUrl: string): Promise<void> {
  const slack: SlackEmulator = await startSlackEmulator({ botToken, timeScale, users: [dev], channels });
  const slackEnv = {
    SLACK_BOT_TOKEN: botToken,
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_API_URL: `${slack.url}/api/`,
    SLACK_POST_INTERVAL_MS: String(Math.ceil(1100 * timeScale)),
    SLACK_UPDATE_INTERVAL_MS: String(Math.ceil(1250 * timeScale)),
  };
  let stack: CliStack | undefined;
  const processes: ShipbotProcess[] = [];
  try {
    stack = await startCliStack({
      emulator: {
        deployments: services.map((name) => ({
          namespace: "staging",
          name,
          image: `ghcr.io/acme/${name}:v1`,
          replicas: 2,
        })),
        stepMs: 100,
      },
      redisUrl,
      config: scaleOutConfig(),
      env: slackEnv,
    });
    const { emulator, producer } = stack;
    const serveUrls: string[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      processes.push(stack.start(["serve"], { PORT: String(port) }));
      serveUrls.push(`http://127.0.0.1:${port}`);
    }
    processes.push(stack.start(["worker"]), stack.start(["worker"]));
    const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 45_000) =>
      waitUntil(what, probe, timeoutMs).catch((error: unknown) => {
        const tails = processes.map((p, i) => `--- process ${i}:\n${p.output().slice(-1_500)}`);
        throw new Error(`${(error as Error).message}\n${tails.join("\n")}`);
      });
    for (const url of serveUrls) {
      await until(`${url} to be ready`, async () => {
        const res = await fetch(`${url}/readyz`).catch(() => undefined);
        return res?.ok ? true : undefined;
      });
    }

    // Signed slash commands, alternately to each serve process, spread over four channels.
    const commands = [
      ...services.map((service) => ({ service, text: `${service} staging v2`, command: "/deploy" })),
      ...scaled.map((service) => ({ service, text: `${service} staging 4`, command: "/scale" })),
    ];
    const sent: Sent[] = [];
    for (const [i, c] of commands.entries()) {
      const channel = channels[i % channels.length] as string;
      const trigger = newTriggerId();
      const body = slashCommandBody({
        command: c.command,
        text: c.text,
        user: dev,
        channel,
        responseUrl: "http://127.0.0.1:9",
        trigger,
      });
      const res = await sendSlackRequest(serveUrls[i % 2] as string, signingSecret, body);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("");
      sent.push({
        jobId: createJobId("slack", trigger, 0),
        channel,
        service: c.service,
        expected:
          c.command === "/deploy"
            ? new RegExp(`✅ Deployed ghcr\\.io/acme/${c.service}:v2 in \\d+s$`)
            : /✅ Scaled to 4 replicas/,
      });
    }

    // Every job ends, and every card shows that end.
    const states = new Map<string, JobState>();
    await until("every job to end", async () => {
      for (const s of sent) {
        if (states.has(s.jobId)) continue;
        const state = await producer.status.read(s.jobId);
        if (state && terminalPhases.has(state.phase)) states.set(s.jobId, state);
      }
      return states.size === sent.length ? true : undefined;
    });
    const cardOf = (s: Sent): SlackMessage[] =>
      slack.messages(s.channel).filter((m) => JSON.stringify(m.blocks ?? []).includes(`job ${s.jobId}`));
    await until("every card to show its final state", async () =>
      sent.every((s) => cardOf(s).some((m) => m.text.includes(states.get(s.jobId)?.text ?? "?")))
        ? true
        : undefined,
    );
    // Nothing is left to render, so no late post or edit can follow what is asserted below.
    await until("the card queue to drain", async () => {
      const due = await producer.redis.zcard(producer.keys.cards);
      const rendering = await producer.redis.zcard(producer.keys.cardsInflight);
      return due + rendering === 0 ? true : undefined;
    });

    // Every job succeeded, and ran once: the cluster saw one patch per deploy, and per scale one
    // annotation of its job on the Deployment plus one patch of the scale subresource.
    expect([...states.values()].map((s) => s.phase)).toEqual(sent.map(() => "succeeded"));
    for (const service of services) {
      const deployment = emulator.deployment("staging", service);
      expect(emulator.writes("staging", service), service).toBe(scaled.includes(service) ? 1 + 2 : 1);
      expect(deployment.spec.template.spec.containers[0].image).toBe(`ghcr.io/acme/${service}:v2`);
      expect(deployment.spec.replicas).toBe(scaled.includes(service) ? 4 : 2);
    }

    // One message per job and nothing else in the channels; each was posted once, then only edited.
    const cards = channels.flatMap((channel) => slack.messages(channel));
    expect(cards).toHaveLength(sent.length);
    const posts = slack.calls("chat.postMessage").filter((c) => c.ok);
    expect(posts).toHaveLength(sent.length);
    for (const s of sent) {
      const found = cardOf(s);
      expect(found, `cards of ${s.jobId}`).toHaveLength(1);
      const card = found[0] as SlackMessage;
      expect(card.user).toBe(slack.botUserId);
      expect(card.thread_ts).toBeUndefined();
      // A job that ends before its first render is posted once in its final state; the others are
      // posted early and edited in place, by whichever process renders their next state.
      if (card.edits > 0) expect(card.history[0]?.text).not.toMatch(/✅/);
      expect(card.text.split("\n")[1]).toMatch(s.expected);
    }
    expect(cards.filter((c) => c.edits > 0).length, "cards edited in place").toBeGreaterThan(0);
    const cardTs = new Set(cards.map((m) => `${m.channel}/${m.ts}`));
    for (const update of slack.calls("chat.update").filter((c) => c.ok)) {
      expect(cardTs.has(`${String(update.args.channel)}/${String(update.args.ts)}`)).toBe(true);
    }
    expect(slack.ephemerals()).toEqual([]);
    // No process fell over along the way.
    for (const p of processes) expect(p.child.exitCode).toBeNull();
  } finally {
    await stack?.close();
    await slack.close();
  }
}

describe("two serve and two worker processes", () => {
  it("on a standalone Redis: every job runs once, every card is posted once and ends final", async () => {
    await runScaleOut(localRedisUrl);
  }, 90_000);

  describe("on a three-master Redis Cluster", () => {
    let cluster: RedisCluster | undefined;
    beforeAll(async () => {
      cluster = await startRedisCluster();
    }, 60_000);
    afterAll(async () => {
      await cluster?.stop();
    });

    it("every job runs once, every card is posted once and ends final", async () => {
      await runScaleOut((cluster as RedisCluster).url);
    }, 90_000);
  });
});
