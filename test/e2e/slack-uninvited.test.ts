/**
 * Slack, in a conversation the bot cannot post in (not invited, a DM between people): a signed slash
 * command over HTTP → the real Bolt app → a real Redis runtime (worker + notifier) → the Kubernetes
 * emulator; the job's card cannot be posted, so the person who ran the command is shown it privately
 * through the command's response_url, which the Slack emulator serves with Slack's limits (five uses,
 * 30 minutes). What we assert is what that person sees.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { WebClient } from "@slack/web-api";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createSlackAdapter,
  createSlackChat,
  type SlackAdapter,
  slackGroupIdsOf,
} from "../../src/adapters/slack/index.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import { createCard } from "../../src/core/card.ts";
import type { Config } from "../../src/core/config.ts";
import { isShipbotError } from "../../src/core/errors.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";
import { type SlackEmulator, startSlackEmulator } from "../emulators/slack/index.ts";
import { sendSlackRequest, slashCommandBody } from "../helpers/slack-requests.ts";
import { redisUrl, testConfig } from "../helpers/test-runtime.ts";

const signingSecret = `test-secret-${randomBytes(8).toString("hex")}`;
const botToken = "xoxb-test-token";
const timeScale = 0.05;
const dev = { id: "U0DEMO0001", name: "dev-1" };
const inviteLine =
  "🔒 Only you can see this: the bot is not a member of that channel: invite it with `/invite @shipbot`";

let slack: SlackEmulator;
let kube: KubeEmulator;
let runtime: Runtime;
let adapter: SlackAdapter;
let server: Server;
let baseUrl: string;
let config: Config;
let dir: string;
/** Everything shipbot logs, at debug level: a response_url must never be in it. */
let logged = "";

beforeAll(async () => {
  slack = await startSlackEmulator({
    botToken,
    timeScale,
    users: [dev],
    channels: ["C0INVITED"],
    otherChannels: ["C0NOTIN"],
  });
  kube = await startKubeEmulator({
    stepMs: 15,
    msPerSecond: 10,
    deployments: [
      { namespace: "staging", name: "api", image: "ghcr.io/acme/api:v1", replicas: 2 },
      { namespace: "staging", name: "web", image: "ghcr.io/acme/web:v1", replicas: 2 },
    ],
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-slack-uninvited-"));
  const kubeconfigPath = await kube.writeKubeconfig(join(dir, "kubeconfig"));
  config = testConfig();
  const log = pino(
    { level: "debug" },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged += chunk.toString();
        done();
      },
    }),
  );
  let handlers: Pick<Runtime, "handle" | "handleAction"> | undefined;
  adapter = createSlackAdapter({
    signingSecret,
    botToken,
    apiUrl: `${slack.url}/api/`,
    handle: (command) => (handlers as Runtime).handle(command),
    handleAction: (action) => (handlers as Runtime).handleAction(action),
    log,
    groupIds: slackGroupIdsOf(config),
    pace: { postIntervalMs: 1100 * timeScale, updateIntervalMs: 1250 * timeScale },
  });
  runtime = await createRuntime({
    config,
    redisUrl,
    executor: createKubernetesExecutor({ kubeConfig: loadKubeConfig({ kubeconfigPath }), pollMs: 20 }),
    chats: { slack: adapter.chat },
    log,
    accept: true,
    work: true,
    notify: true,
  });
  handlers = runtime;
  await adapter.start();
  server = createHttpServer({ log, ready: async () => ({ ok: true, reasons: [] }), routes: adapter.routes });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await adapter?.stop();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await runtime?.close();
  const redis = new Redis(redisUrl);
  await cleanupPrefix(redis, config.redisPrefix);
  await redis.quit();
  await slack?.close();
  await kube?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A signed slash command whose response_url is one the Slack emulator issued (and limits). */
async function slash(command: string, text: string, channel: string): Promise<string> {
  const responseUrl = slack.responseUrl(dev.id, channel);
  const body = new URLSearchParams(slashCommandBody({ command, text, user: dev, channel, responseUrl: "" }));
  body.set("response_url", responseUrl);
  const res = await sendSlackRequest(baseUrl, signingSecret, body.toString());
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("");
  return responseUrl;
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The one job a command made in `channel`, once it has ended. */
async function finishedJobIn(channel: string): Promise<JobState> {
  return until(`the job in ${channel} to end`, async () => {
    const jobs = await runtime.ops.queue.getJobs(["completed", "failed"]);
    const job = jobs.find((j) => j?.data.conversation.channel === channel);
    const state = job?.id === undefined ? undefined : await runtime.status.read(job.id);
    return state && terminalPhases.has(state.phase) ? state : undefined;
  });
}

const seenBy = (channel: string) => slack.ephemerals(channel).filter((e) => e.user === dev.id);
const chatCallsIn = (channel: string) =>
  slack
    .calls()
    .filter((c) => c.args.channel === channel && c.method.startsWith("chat."))
    .map((c) => `${c.method} ${c.error ?? c.status}`);

describe("a slash command where the bot cannot post", () => {
  it("shows the person the job's card privately with how to invite the bot, then how it ended", async () => {
    const responseUrl = await slash("/deploy", "api staging v2", "C0NOTIN");
    const state = await finishedJobIn("C0NOTIN");
    expect(state.phase).toBe("succeeded");
    // The card, then its outcome, privately; a job that ends before its card's first render shows its
    // outcome in that one message.
    const last = await until("the outcome, privately", () =>
      seenBy("C0NOTIN").find((e) => /✅ Deployed ghcr\.io\/acme\/api:v2 in \d+s/.test(e.text)),
    );
    const first = seenBy("C0NOTIN")[0];
    // The card as the channel would have shown it, and one line saying what to do.
    expect(first?.text.split("\n")[0]).toBe("🚀 api → staging · v2");
    expect(JSON.stringify(first?.blocks)).toContain(`job ${state.jobId}`);
    for (const shown of seenBy("C0NOTIN")) expect(shown.text).toContain(inviteLine);
    expect(seenBy("C0NOTIN").at(-1)).toEqual(last);

    // Nothing else happened: no card in the channel, one failed post and no edits of a card that does not
    // exist, and at most two of the response_url's five uses (the card, its outcome).
    await sleep(500);
    await adapter.idle();
    const shown = seenBy("C0NOTIN").length;
    expect(shown).toBeLessThanOrEqual(2);
    expect(slack.messages("C0NOTIN")).toEqual([]);
    expect(chatCallsIn("C0NOTIN")).toEqual(["chat.postMessage not_in_channel"]);
    expect(slack.calls("response_url").map((c) => c.status)).toEqual(Array(shown).fill(200));

    // The response_url is a capability: in no log line, no audit entry, no message.
    const secret = responseUrl.split("/").at(-1) as string;
    expect(logged).not.toContain(secret);
    const ledger = await runtime.redis.xrange(runtime.keys.audit, "-", "+");
    expect(ledger.length).toBeGreaterThan(0);
    expect(JSON.stringify(ledger)).not.toContain(secret);
    expect(JSON.stringify(slack.ephemerals())).not.toContain(secret);
  });

  it("a Roll back clicked on the private card is shown to the clicker privately too", async () => {
    const seen = seenBy("C0NOTIN");
    const button = (seen.at(-1)?.blocks ?? [])
      .flatMap((b) =>
        (b as { type: string }).type === "actions" ? (b as { elements: unknown[] }).elements : [],
      )
      .find((e) => (e as { action_id?: string }).action_id === "shipbot:rollback") as
      | { action_id: string; value: string }
      | undefined;
    if (!button) throw new Error("no Roll back on the private card");
    const before = seen.length;
    const trigger = `${Date.now()}.1.${randomBytes(8).toString("hex")}`;
    // Slack's payload for a click in an ephemeral message: its container says so, and it has no message.
    const payload = {
      type: "block_actions",
      user: { id: dev.id, username: dev.name, name: dev.name, team_id: "T0EMULATED" },
      api_app_id: "A0SHIPBOT",
      token: "legacy-verification-token",
      container: {
        type: "message",
        message_ts: `${Date.now() / 1000}`,
        channel_id: "C0NOTIN",
        is_ephemeral: true,
      },
      trigger_id: trigger,
      team: { id: "T0EMULATED", domain: "emulated" },
      channel: { id: "C0NOTIN", name: "c0notin" },
      response_url: slack.responseUrl(dev.id, "C0NOTIN", "actions"),
      actions: [{ ...button, block_id: "b1", type: "button", action_ts: `${Date.now() / 1000}` }],
    };
    const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    expect((await sendSlackRequest(baseUrl, signingSecret, body)).status).toBe(200);
    const outcome = await until("the rollback's outcome, privately", () =>
      seenBy("C0NOTIN")
        .slice(before)
        .find((e) => e.text.includes("Rolled back")),
    );
    expect(outcome.text).toContain(inviteLine);
    expect(slack.messages("C0NOTIN")).toEqual([]);
    expect(chatCallsIn("C0NOTIN").filter((c) => !c.endsWith("not_in_channel"))).toEqual([]);
  });

  it("changes nothing in a channel the bot is in: the card is posted there and the response_url is unused", async () => {
    const before = slack.calls("response_url").length;
    await slash("/deploy", "web staging v3", "C0INVITED");
    await finishedJobIn("C0INVITED");
    const card = await until("the final card", () =>
      slack.messages("C0INVITED").find((m) => m.text.includes("Deployed ghcr.io/acme/web:v3")),
    );
    expect(card.text).not.toContain("Only you can see this");
    expect(slack.messages("C0INVITED")).toHaveLength(1);
    expect(slack.ephemerals("C0INVITED")).toEqual([]);
    expect(slack.calls("response_url")).toHaveLength(before);
  });
});

describe("the Slack chat port's private fallback", () => {
  function portAt(now: () => number) {
    const client = new WebClient(botToken, { slackApiUrl: `${slack.url}/api/`, retryConfig: { retries: 0 } });
    return createSlackChat(client, { now });
  }
  const card = (tone: "pending" | "success") => createCard(tone, "🚀 api → staging · v9", ["line"]);

  it("does not use a response_url after its 30 minutes, and says the person cannot be told", async () => {
    const before = slack.calls("response_url").length;
    const url = slack.responseUrl(dev.id, "C0NOTIN");
    const conversation = {
      platform: "slack" as const,
      channel: "C0NOTIN",
      responseUrl: { url, expiresAt: Date.now() + 30 * 60_000 },
    };
    const late = portAt(() => Date.now() + 31 * 60_000);
    const error = await late.post(conversation, card("pending")).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(isShipbotError(error) && !error.retryable).toBe(true);
    expect(String((error as Error).message)).toContain("no longer usable");
    expect(String((error as Error).message)).not.toContain(url);
    expect(slack.calls("response_url")).toHaveLength(before);
  });

  it("edits of a private card make no Slack call; only a final state uses the response_url again", async () => {
    const url = slack.responseUrl(dev.id, "C0NOTIN");
    const conversation = {
      platform: "slack" as const,
      channel: "C0NOTIN",
      responseUrl: { url, expiresAt: Date.now() + 30 * 60_000 },
    };
    const port = portAt(Date.now);
    const callsBefore = slack.calls().length;
    const ref = await port.post(conversation, card("pending"));
    expect(ref).not.toContain(url);
    for (let i = 0; i < 10; i++) await port.update(conversation, ref, card("pending"));
    await port.update(conversation, ref, card("success"));
    expect(
      slack
        .calls()
        .slice(callsBefore)
        .map((c) => `${c.method} ${c.error ?? c.status}`),
    ).toEqual(["chat.postMessage not_in_channel", "response_url 200", "response_url 200"]);
  });
});
