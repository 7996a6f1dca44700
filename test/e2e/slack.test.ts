/**
 * Slack end to end: signed HTTP requests → the real Bolt app mounted on our server → a real Redis
 * runtime (worker + notifier) → the real Kubernetes executor against the Kubernetes emulator; cards and
 * answers go through the real WebClient to the Slack emulator, whose record of calls is what we assert.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Job } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSlackAdapter, type SlackAdapter, slackGroupIdsOf } from "../../src/adapters/slack/index.ts";
import { computeSlackSignature } from "../../src/adapters/slack/verify-slack-signature.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import { type JobData, terminalPhases } from "../../src/core/model.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";
import {
  type SlackEmulator,
  type SlackEphemeral,
  type SlackMessage,
  startSlackEmulator,
} from "../emulators/slack/index.ts";
import {
  newTriggerId,
  type SlackRequestOptions,
  sendSlackRequest,
  slashCommandBody,
} from "../helpers/slack-requests.ts";
import { quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";

const signingSecret = `test-secret-${randomBytes(8).toString("hex")}`;
const botToken = "xoxb-test-token";
/** Slack's limits run 20× faster in the emulator; shipbot's pacing is scaled to match. */
const timeScale = 0.05;

const dev = { id: "U0DEMO0001", name: "dev-1" };
const sre = { id: "U0SRE00001", name: "sre-1" };
const groupie = { id: "U0GROUPIE1", name: "grouped-sre" };
const sre2 = { id: "U0SRE00002", name: "sre-2" };
const stranger = { id: "U0NOBODY01", name: "nobody" };

let slack: SlackEmulator;
let kube: KubeEmulator;
let runtime: Runtime;
let adapter: SlackAdapter;
let server: Server;
let responses: Server;
let baseUrl: string;
let responseUrl: string;
let config: Config;
let dir: string;
/** Bodies POSTed to response_url, by path. */
const responded: Array<{ path: string; body: Record<string, unknown> }> = [];

beforeAll(async () => {
  slack = await startSlackEmulator({
    botToken,
    timeScale,
    users: [dev, sre, groupie, sre2, stranger],
    usergroups: [
      { id: "S0SRE", handle: "sre", users: [groupie.id, sre2.id] },
      { id: "S0DEVELOPERS", handle: "developers", users: [] },
      { id: "S0EVERYONE", handle: "everyone", users: [dev.id, sre.id, groupie.id] },
    ],
    otherChannels: ["C0NOTIN"],
    channels: [
      "C0DEPLOY",
      "C0TYPO",
      "C0DENY",
      "C0REDELIVER",
      "C0CLICK",
      "C0MENTION",
      "C0BURST",
      "C0APPROVE",
      "C0GROUP",
      "C0SIG",
      "C0REMIND",
      "C0ANSWER",
    ],
  });
  kube = await startKubeEmulator({
    stepMs: 15,
    msPerSecond: 10,
    deployments: [
      {
        namespace: "staging",
        name: "api",
        image: "ghcr.io/acme/api:v1",
        replicas: 2,
        previousImages: ["ghcr.io/acme/api:v0"],
      },
      { namespace: "staging", name: "web", image: "ghcr.io/acme/web:v1", replicas: 2 },
      { namespace: "production", name: "api", image: "ghcr.io/acme/api:v1", replicas: 2 },
      { namespace: "production", name: "web", image: "ghcr.io/acme/web:v1", replicas: 2 },
    ],
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-slack-e2e-"));
  const kubeconfigPath = await kube.writeKubeconfig(join(dir, "kubeconfig"));
  config = testConfig();
  const executor = createKubernetesExecutor({ kubeConfig: loadKubeConfig({ kubeconfigPath }), pollMs: 20 });

  // response_url goes to a local recorder: the fallback when the bot cannot post in a channel.
  responses = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => {
      text += c.toString();
    });
    req.on("end", () => {
      responded.push({ path: req.url ?? "", body: JSON.parse(text) as Record<string, unknown> });
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    });
  });
  await new Promise<void>((resolve) => responses.listen(0, "127.0.0.1", resolve));
  responseUrl = `http://127.0.0.1:${(responses.address() as AddressInfo).port}`;

  // The same wiring the composition root uses: the adapter's chat port goes into the runtime, the
  // runtime's handlers into the adapter (through late-bound functions, as each needs the other).
  let handlers: Pick<Runtime, "handle" | "handleAction"> | undefined;
  adapter = createSlackAdapter({
    signingSecret,
    botToken,
    apiUrl: `${slack.url}/api/`,
    handle: (command) => (handlers as Runtime).handle(command),
    handleAction: (action) => (handlers as Runtime).handleAction(action),
    log: quietLog,
    groupIds: slackGroupIdsOf(config),
    pace: { postIntervalMs: 1100 * timeScale, updateIntervalMs: 1250 * timeScale },
  });
  runtime = await createRuntime({
    config,
    redisUrl,
    executor,
    chats: { slack: adapter.chat },
    log: quietLog,
    accept: true,
    work: true,
    notify: true,
  });
  handlers = runtime;
  await adapter.start();
  server = createHttpServer({
    log: quietLog,
    ready: async () => ({ ok: true, reasons: [] }),
    routes: adapter.routes,
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await adapter?.stop();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await new Promise((resolve) => responses?.close(resolve));
  await runtime?.close();
  const redis = new Redis(redisUrl);
  await cleanupPrefix(redis, config.redisPrefix);
  await redis.quit();
  await slack?.close();
  await kube?.close();
  await rm(dir, { recursive: true, force: true });
});

// ---- requests as Slack sends them ------------------------------------------------------------------

type SendOptions = SlackRequestOptions;

function send(body: string | Buffer, options: SendOptions = {}): Promise<Response> {
  return sendSlackRequest(baseUrl, signingSecret, body, options);
}

const triggerId = newTriggerId;

function slashBody(
  command: string,
  text: string,
  user: { id: string; name: string },
  channel: string,
  trigger = triggerId(),
): string {
  return slashCommandBody({ command, text, user, channel, responseUrl, trigger });
}

async function slash(
  command: string,
  text: string,
  user: { id: string; name: string },
  channel: string,
): Promise<Response> {
  const res = await send(slashBody(command, text, user, channel));
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("");
  return res;
}

function clickBody(message: SlackMessage, actionId: string, user: { id: string; name: string }): string {
  const button = buttonsOf(message).find((b) => b.action_id === actionId);
  if (!button) throw new Error(`no button ${actionId} on message ${message.ts}`);
  const trigger = triggerId();
  const payload = {
    type: "block_actions",
    user: { id: user.id, username: user.name, name: user.name, team_id: "T0EMULATED" },
    api_app_id: "A0SHIPBOT",
    token: "legacy-verification-token",
    container: { type: "message", message_ts: message.ts, channel_id: message.channel, is_ephemeral: false },
    trigger_id: trigger,
    team: { id: "T0EMULATED", domain: "emulated" },
    channel: { id: message.channel, name: message.channel.toLowerCase() },
    message: {
      type: "message",
      user: slack.botUserId,
      ts: message.ts,
      text: message.text,
      blocks: message.blocks,
    },
    response_url: `${responseUrl}/actions/T0EMULATED/${trigger}`,
    actions: [
      {
        action_id: button.action_id,
        block_id: "b1",
        text: { type: "plain_text", text: "Roll back", emoji: true },
        value: button.value,
        style: "danger",
        type: "button",
        action_ts: `${Date.now() / 1000}`,
      },
    ],
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/** An Events API delivery of an `app_mention` for a message a person posted (see slack.addMessage). */
function mentionBody(mention: SlackMessage, user: { id: string }): string {
  return JSON.stringify({
    token: "legacy-verification-token",
    team_id: "T0EMULATED",
    api_app_id: "A0SHIPBOT",
    type: "event_callback",
    event_id: `Ev${randomBytes(5).toString("hex").toUpperCase()}`,
    event_time: Math.floor(Date.now() / 1000),
    authorizations: [{ team_id: "T0EMULATED", user_id: slack.botUserId, is_bot: true }],
    event: {
      type: "app_mention",
      user: user.id,
      text: mention.text,
      ts: mention.ts,
      ...(mention.thread_ts === undefined ? {} : { thread_ts: mention.thread_ts }),
      channel: mention.channel,
      event_ts: mention.ts,
    },
  });
}

interface Button {
  action_id: string;
  value: string;
}

function buttonsOf(message: SlackMessage): Button[] {
  return (message.blocks ?? []).flatMap((block) => {
    const b = block as { type: string; elements?: Button[] };
    return b.type === "actions" ? (b.elements ?? []) : [];
  });
}

// ---- observing ------------------------------------------------------------------------------------

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function jobsIn(channel: string): Promise<Array<Job<JobData>>> {
  const jobs = (await runtime.ops.queue.getJobs([
    "active",
    "waiting",
    "delayed",
    "prioritized",
    "waiting-children",
    "completed",
    "failed",
  ])) as Array<Job<JobData> | undefined>;
  const seen = new Map<string, Job<JobData>>();
  for (const job of jobs) if (job?.id && job.data.conversation.channel === channel) seen.set(job.id, job);
  return [...seen.values()];
}

/** Waits until every job of the channel has ended and its card shows that final state. */
async function allCardsFinal(
  channel: string,
  expectedJobs: number,
  timeoutMs = 30_000,
): Promise<SlackMessage[]> {
  return until(
    `${expectedJobs} final cards in ${channel}`,
    async () => {
      const jobs = await jobsIn(channel);
      if (jobs.length < expectedJobs) return undefined;
      const states = await Promise.all(jobs.map((j) => runtime.status.read(j.id as string)));
      if (states.some((s) => s === undefined || !terminalPhases.has(s.phase))) return undefined;
      const messages = slack.messages(channel);
      const shown = (jobId: string, text: string) =>
        messages.some(
          (m) => JSON.stringify(m.blocks ?? []).includes(`job ${jobId}`) && m.text.includes(text),
        );
      if (!states.every((s) => s !== undefined && shown(s.jobId, s.text))) return undefined;
      return messages;
    },
    timeoutMs,
  );
}

function ephemeralsFor(user: string, channel: string) {
  return slack.ephemerals(channel).filter((e) => e.user === user);
}

/**
 * Whether Slack would show this ephemeral message at all: one posted into a thread appears only while that
 * thread has replies (chat.postEphemeral's `thread_ts`), which the emulator records but does not enforce.
 */
function isShown(ephemeral: SlackEphemeral | undefined): boolean {
  if (ephemeral === undefined) return false;
  const thread = ephemeral.thread_ts;
  if (thread === undefined) return true;
  return slack.messages(ephemeral.channel).some((m) => m.thread_ts === thread && m.ts !== thread);
}

const methodsIn = (channel: string) =>
  slack
    .calls()
    .filter((c) => c.args.channel === channel && c.method.startsWith("chat."))
    .map((c) => `${c.method} ${c.status}`);

// ---- tests ----------------------------------------------------------------------------------------

describe("slash commands", () => {
  it("deploys: acks at once, then one card posted once and edited in place to Deployed", async () => {
    await slash("/deploy", "api staging v2", dev, "C0DEPLOY");
    const message = await until("Deployed card", () =>
      slack.messages("C0DEPLOY").find((m) => m.text.includes("Deployed ghcr.io/acme/api:v2")),
    );
    expect(slack.messages("C0DEPLOY")).toHaveLength(1);
    expect(message.thread_ts).toBeUndefined();
    expect(message.user).toBe(slack.botUserId);
    const methods = methodsIn("C0DEPLOY");
    expect(methods[0]).toBe("chat.postMessage 200");
    // A fast rollout may coalesce into the first post; whatever follows only edits that message.
    for (const method of methods.slice(1)) expect(method).toBe("chat.update 200");
    for (const call of slack.calls("chat.update").filter((c) => c.args.channel === "C0DEPLOY")) {
      expect(call.args.ts).toBe(message.ts);
    }
    // Progress coalesces, so the card may skip states, but it only ever moves forward and ends Deployed.
    const texts = message.history.map((v) => v.text.split("\n")[1] ?? "");
    const order = ["⏳ Queued", "▶", "✅ Deployed"];
    const rank = (t: string) => order.findIndex((prefix) => t.startsWith(prefix));
    expect(texts.map(rank)).not.toContain(-1);
    expect(texts.map(rank)).toEqual([...texts.map(rank)].sort((a, b) => a - b));
    expect(texts.at(-1)).toMatch(/^✅ Deployed ghcr\.io\/acme\/api:v2 in \d+s$/);
    expect(message.text.split("\n")[0]).toBe("🚀 api → staging · v2");
    const [job] = await jobsIn("C0DEPLOY");
    expect(buttonsOf(message)).toEqual([
      expect.objectContaining({ action_id: "shipbot:rollback", value: job?.id }),
    ]);
    expect(JSON.stringify(message.blocks)).toContain(`requested by ${dev.name}`);
    expect(kube.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
    expect(slack.ephemerals("C0DEPLOY")).toEqual([]);
  });

  it("answers a typo with one ephemeral line and does nothing else", async () => {
    await slash("/deploy", "apu staging v2", dev, "C0TYPO");
    const [answer] = await until("ephemeral", () => {
      const found = ephemeralsFor(dev.id, "C0TYPO");
      return found.length > 0 ? found : undefined;
    });
    expect(answer?.text).toBe("no service `apu`; did you mean `api`?");
    await adapter.idle();
    expect(ephemeralsFor(dev.id, "C0TYPO")).toHaveLength(1);
    expect(slack.messages("C0TYPO")).toEqual([]);
    expect(await jobsIn("C0TYPO")).toEqual([]);
  });

  it("refuses a user without the role, ephemerally, by id", async () => {
    await slash("/deploy", "api production v9", stranger, "C0DENY");
    // The name is display only: someone calling themselves sre-1 is still who Slack signed.
    await slash("/deploy", "api production v9", { id: dev.id, name: "sre-1" }, "C0DENY");
    await until("two refusals", () => (slack.ephemerals("C0DENY").length >= 2 ? true : undefined));
    expect(ephemeralsFor(stranger.id, "C0DENY").map((e) => e.text)).toEqual([
      "not allowed: deploy api in production needs role `sre`; you hold no role",
    ]);
    expect(ephemeralsFor(dev.id, "C0DENY").map((e) => e.text)).toEqual([
      "not allowed: deploy api in production needs role `sre`; you hold `deployer`, `viewer`",
    ]);
    expect(slack.messages("C0DENY")).toEqual([]);
    expect(await jobsIn("C0DENY")).toEqual([]);
    expect(kube.deployment("production", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v1",
    );
  });

  it("resolves Slack user groups into roles", async () => {
    await slash("/shipbot", "whoami", groupie, "C0GROUP");
    const [answer] = await until("whoami", () => {
      const found = ephemeralsFor(groupie.id, "C0GROUP");
      return found.length > 0 ? found : undefined;
    });
    expect(answer?.text).toContain(`You are ${groupie.name} (slack:${groupie.id})`);
    expect(answer?.text).toContain("Groups: slack:S0EVERYONE, slack:S0SRE");
    expect(answer?.text).toContain("Role `sre`");
  });

  it("falls back to response_url where the bot cannot post", async () => {
    const before = responded.length;
    await slash("/shipbot", "help", dev, "C0NOTIN");
    const reply = await until("response_url answer", () => responded.slice(before)[0]);
    expect(reply.path).toMatch(/^\/commands\/T0EMULATED\//);
    expect(reply.body).toMatchObject({ response_type: "ephemeral", replace_original: false });
    expect(String(reply.body.text)).toContain("deploy");
  });

  it("makes no second job or card for a redelivered slash command", async () => {
    const body = slashBody("/deploy", "web staging v7", dev, "C0REDELIVER");
    const timestamp = Math.floor(Date.now() / 1000);
    const first = await send(body, { timestamp });
    const again = await send(body, {
      timestamp,
      headers: { "x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout" },
    });
    expect([first.status, again.status]).toEqual([200, 200]);
    const [message] = await allCardsFinal("C0REDELIVER", 1);
    await adapter.idle();
    expect(message?.text).toContain("Deployed ghcr.io/acme/web:v7");
    expect(slack.messages("C0REDELIVER")).toHaveLength(1);
    expect(slack.calls("chat.postMessage").filter((c) => c.args.channel === "C0REDELIVER")).toHaveLength(1);
    expect(await jobsIn("C0REDELIVER")).toHaveLength(1);
    expect(slack.ephemerals("C0REDELIVER")).toEqual([]);
  });

  it("takes commands from @mentions, with the card in a thread under the mention", async () => {
    const mention = slack.addMessage({
      channel: "C0MENTION",
      user: dev.id,
      text: `<@${slack.botUserId}> scale web staging 3`,
    });
    const body = mentionBody(mention, dev);
    const res = await send(body, { contentType: "application/json" });
    expect(res.status).toBe(200);
    // The Events API retries with the same event_id: still one job.
    const retry = await send(body, {
      contentType: "application/json",
      headers: { "x-slack-retry-num": "1" },
    });
    expect(retry.status).toBe(200);
    const messages = await allCardsFinal("C0MENTION", 1);
    const card = messages.find((m) => m.user === slack.botUserId);
    expect(card?.thread_ts).toBe(mention.ts);
    expect(card?.orphan).toBeUndefined();
    expect(card?.text).toContain("Scaled to 3 replicas");
    expect(await jobsIn("C0MENTION")).toHaveLength(1);
  });

  it("answers an @mention where the person can see it: in the channel for a top-level one, in the thread for a reply", async () => {
    // A top-level mention has no thread yet: an answer posted under it would be shown nowhere.
    const top = slack.addMessage({
      channel: "C0ANSWER",
      user: dev.id,
      text: `<@${slack.botUserId}> deploy apu staging v2`,
    });
    expect((await send(mentionBody(top, dev), { contentType: "application/json" })).status).toBe(200);
    const [first] = await until("the answer to the top-level mention", () => {
      const found = ephemeralsFor(dev.id, "C0ANSWER");
      return found.length > 0 ? found : undefined;
    });
    expect(first?.text).toBe("no service `apu`; did you mean `api`?");
    expect(first?.thread_ts).toBeUndefined();
    expect(isShown(first)).toBe(true);

    // A mention typed as a reply is in a thread that exists: the answer stays with the conversation there.
    const parent = slack.addMessage({ channel: "C0ANSWER", user: sre.id, text: "shipping web today" });
    const reply = slack.addMessage({
      channel: "C0ANSWER",
      user: dev.id,
      text: `<@${slack.botUserId}> scale web staging lots`,
      thread_ts: parent.ts,
    });
    expect((await send(mentionBody(reply, dev), { contentType: "application/json" })).status).toBe(200);
    const second = await until("the answer to the reply", () => ephemeralsFor(dev.id, "C0ANSWER")[1]);
    expect(second.thread_ts).toBe(parent.ts);
    expect(isShown(second)).toBe(true);
    await adapter.idle();
    expect(slack.messages("C0ANSWER").filter((m) => m.user === slack.botUserId)).toEqual([]);
    expect(await jobsIn("C0ANSWER")).toEqual([]);
  });
});

describe("buttons", () => {
  it("a double-clicked Roll back makes one rollback job, and a stranger's click is refused with a reason", async () => {
    await slash("/deploy", "api staging v3", sre, "C0CLICK");
    const [deployCard] = await allCardsFinal("C0CLICK", 1);
    if (!deployCard) throw new Error("no deploy card");
    expect(deployCard.text).toContain("Deployed ghcr.io/acme/api:v3");

    // A stranger (claiming a trusted name) clicks first: refused, nothing changes.
    const refused = await send(clickBody(deployCard, "shipbot:rollback", { id: stranger.id, name: "sre-1" }));
    expect(refused.status).toBe(200);
    const [refusal] = await until("refusal", () => {
      const found = ephemeralsFor(stranger.id, "C0CLICK");
      return found.length > 0 ? found : undefined;
    });
    expect(refusal?.text).toBe(
      "not allowed: rollback api in staging needs role `deployer` or `sre`; you hold no role",
    );
    // The card has no replies yet, so the refusal goes to the channel: in its thread Slack would show nothing.
    expect(refusal?.thread_ts).toBeUndefined();
    expect(isShown(refusal)).toBe(true);
    expect(await jobsIn("C0CLICK")).toHaveLength(1);

    // Two clicks of the same button, as a double click sends them.
    const clicks = await Promise.all([
      send(clickBody(deployCard, "shipbot:rollback", dev)),
      send(clickBody(deployCard, "shipbot:rollback", dev)),
    ]);
    expect(clicks.map((r) => r.status)).toEqual([200, 200]);
    const messages = await allCardsFinal("C0CLICK", 2);
    await adapter.idle();
    const rollbackCards = messages.filter((m) => m.ts !== deployCard.ts);
    expect(rollbackCards).toHaveLength(1);
    expect(rollbackCards[0]?.thread_ts).toBe(deployCard.ts);
    expect(rollbackCards[0]?.orphan).toBeUndefined();
    expect(rollbackCards[0]?.text).toContain("Rolled back to ghcr.io/acme/api:v2");
    const jobs = await jobsIn("C0CLICK");
    expect(jobs.map((j) => j.data.kind).sort()).toEqual(["deploy", "rollback"]);
    expect(slack.calls("chat.postMessage").filter((c) => c.args.channel === "C0CLICK")).toHaveLength(2);
    expect(ephemeralsFor(dev.id, "C0CLICK")).toEqual([]);
    expect(kube.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
  });
});

describe("approvals", () => {
  it("a production deploy runs once after two other sre approve from the card; the requester's click does not count", async () => {
    await slash("/deploy", "api production v3", sre, "C0APPROVE");
    const card = await until("the approval card", () =>
      slack
        .messages("C0APPROVE")
        .find((m) => buttonsOf(m).some((b) => b.action_id.startsWith("shipbot:approve"))),
    );
    expect(card.text).toMatch(/Needs 2 approvals from sre \(not sre-1\)/);
    const approve = buttonsOf(card).find((b) => b.action_id.startsWith("shipbot:approve"))
      ?.action_id as string;

    await send(clickBody(card, approve, sre));
    const [own] = await until("the requester's refusal", () => {
      const found = ephemeralsFor(sre.id, "C0APPROVE");
      return found.length > 0 ? found : undefined;
    });
    expect(own?.text).toBe("not allowed: you asked for this change; someone else must approve it");
    expect(isShown(own)).toBe(true);
    expect(await jobsIn("C0APPROVE")).toHaveLength(0);

    await send(clickBody(card, approve, groupie));
    await until("the first approval", () => ephemeralsFor(groupie.id, "C0APPROVE")[0]);
    expect(ephemeralsFor(groupie.id, "C0APPROVE")[0]?.text).toBe("Your approval counts: 1 of 2");
    expect(isShown(ephemeralsFor(groupie.id, "C0APPROVE")[0])).toBe(true);
    expect(await jobsIn("C0APPROVE")).toHaveLength(0);

    await send(clickBody(card, approve, sre2));
    const messages = await allCardsFinal("C0APPROVE", 1);
    const final = messages.find((m) => m.ts === card.ts);
    expect(final?.text).toContain("Deployed ghcr.io/acme/api:v3");
    expect(buttonsOf(final as SlackMessage).some((b) => b.action_id.startsWith("shipbot:approve"))).toBe(
      false,
    );
    expect(JSON.stringify(final?.blocks)).toContain("grouped-sre, sre-2");
    expect(kube.deployment("production", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v3",
    );
    expect(kube.writes("production", "api")).toBe(1);
    expect(slack.calls("chat.postMessage").filter((c) => c.args.channel === "C0APPROVE")).toHaveLength(1);
  });

  it("reminds once in the request card's thread before it expires, mentioning the approvers' user group", async () => {
    await slash("/deploy", "web production v5", sre, "C0REMIND");
    const card = await until("the approval card", () =>
      slack
        .messages("C0REMIND")
        .find((m) => buttonsOf(m).some((b) => b.action_id.startsWith("shipbot:approve"))),
    );
    const jobId = buttonsOf(card).find((b) => b.action_id.startsWith("shipbot:approve"))?.value as string;
    // Due now rather than twenty minutes from now (the reminder is scheduled ten minutes before expiry).
    expect(await runtime.redis.zscore(runtime.keys.approvalReminders, jobId)).not.toBeNull();
    await runtime.redis.zadd(runtime.keys.approvalReminders, Date.now() - 1, jobId);

    const reply = await until("the reminder reply", () =>
      slack.messages("C0REMIND").find((m) => m.thread_ts === card.ts),
    );
    expect(reply.orphan).toBeUndefined();
    expect(reply.text).toMatch(
      /^<!subteam\^S0SRE> ⏰ Approval reminder · 🚀 web → production · v5\nStill needs 2 more approvals from sre · expires \d{2}:\d{2} UTC \(in (30|29) min\)$/,
    );
    expect(JSON.stringify(reply.blocks)).toContain('"text":"<!subteam^S0SRE>"');
    expect(buttonsOf(reply)).toEqual([]);
    // The card itself is not edited for it, and the sweeper's next rounds post nothing more.
    await sleep(1_500);
    expect(slack.messages("C0REMIND").filter((m) => m.thread_ts === card.ts)).toHaveLength(1);
    expect(slack.message("C0REMIND", card.ts)?.edits).toBe(0);
    const posts = slack.calls("chat.postMessage").filter((c) => c.args.channel === "C0REMIND");
    expect(posts.map((c) => c.args.thread_ts)).toEqual([undefined, card.ts]);
  });
});

describe("request checks", () => {
  it("refuses missing, wrong, stale and future signatures with 401 and does nothing", async () => {
    const callsBefore = slack.calls().length;
    const body = slashBody("/deploy", "api staging v66", dev, "C0SIG");
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string, SendOptions]> = [
      ["no signature", { signature: null }],
      ["no timestamp", { headers: { "x-slack-request-timestamp": "" } }],
      ["wrong secret", { signature: computeSlackSignature("another-secret", String(now), body) }],
      ["other body", { signature: computeSlackSignature(signingSecret, String(now), `${body}x`) }],
      ["not hex", { signature: "v0=zz" }],
      // A minute past the five-minute window either way: the requests before it may take seconds on a
      // busy machine, and a margin of one second turned "future" into "just inside".
      ["stale", { timestamp: now - 360 }],
      ["future", { timestamp: now + 360 }],
    ];
    for (const [name, options] of cases) {
      const res = await send(body, options);
      expect(res.status, name).toBe(401);
    }
    await adapter.idle();
    expect(slack.calls().length).toBe(callsBefore);
    expect(await jobsIn("C0SIG")).toEqual([]);
  });

  it("refuses malformed signed bodies with 400 and oversized ones with 413", async () => {
    const cases: Array<[string, string]> = [
      ["application/json", "null"],
      ["application/json", "{not json"],
      ["application/json", '{"type":"event_callback","event":42}'],
      ["application/x-www-form-urlencoded", "payload=%7Bbroken"],
      ["application/x-www-form-urlencoded", `payload=${encodeURIComponent('{"type":"block_actions"}')}`],
      ["application/x-www-form-urlencoded", "command=%2Fdeploy&text=api"],
      ["text/xml", "<deploy/>"],
    ];
    for (const [contentType, body] of cases) {
      const res = await send(body, { contentType });
      expect(res.status, body).toBe(400);
    }
    const huge = Buffer.alloc(1024 * 1024 + 1, "a");
    expect((await send(huge)).status).toBe(413);
    expect(await jobsIn("C0SIG")).toEqual([]);
  });

  it("answers url_verification, Slack's unsigned ssl_check, and ignores what it does not handle", async () => {
    const challenge = await send(
      JSON.stringify({ type: "url_verification", token: "t", challenge: "c-123" }),
      {
        contentType: "application/json",
      },
    );
    expect(challenge.status).toBe(200);
    expect(await challenge.json()).toEqual({ challenge: "c-123" });
    const ssl = await send("ssl_check=1&token=legacy", { signature: null });
    expect(ssl.status).toBe(200);
    const other = await send(slashBody("/other", "x", dev, "C0SIG"));
    expect(other.status).toBe(200);
    expect(((await other.json()) as { text: string }).text).toContain("does not handle /other");
  });
});

describe("pacing", () => {
  it("many jobs in one channel: zero 429s and every card reaches its final state", async () => {
    const since = Date.now();
    const commands = [
      ...Array.from({ length: 8 }, (_, i) => ["/deploy", `web staging v1${i}`]),
      ...Array.from({ length: 4 }, (_, i) => ["/scale", `api staging ${i + 2}`]),
      ["/shipbot", "deploy web staging v20"],
      ["/rollback", "web production"],
    ] as const;
    await Promise.all(commands.map(([command, text]) => slash(command, text, sre, "C0BURST")));
    const messages = await allCardsFinal("C0BURST", commands.length, 45_000);
    const jobs = await jobsIn("C0BURST");
    expect(jobs).toHaveLength(commands.length);
    expect(messages).toHaveLength(commands.length);
    for (const job of jobs) {
      const state = await runtime.status.read(job.id as string);
      const cards = messages.filter((m) => JSON.stringify(m.blocks).includes(`job ${job.id}`));
      expect(cards, job.id).toHaveLength(1);
      expect(cards[0]?.text).toContain(state?.text);
    }
    const posts = slack.calls("chat.postMessage").filter((c) => c.args.channel === "C0BURST");
    expect(posts).toHaveLength(commands.length);
    expect(slack.calls().filter((c) => c.at >= since && c.status === 429)).toEqual([]);
  });
});
