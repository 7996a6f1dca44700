/**
 * Teams end to end: activities signed by a local token issuer → HTTP on our server → the real
 * botbuilder CloudAdapter (real JWT validation against the issuer's OpenID metadata) → a real Redis
 * runtime (worker + notifier) → the real Kubernetes executor against the Kubernetes emulator. Replies,
 * card posts and updates go through botbuilder's connector client to the connector emulator, whose
 * record is what we assert.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Job } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createConversationStore,
  createTeamsAdapter,
  renderAdaptiveCard,
  type TeamsAdapter,
} from "../../src/adapters/teams/index.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import { isShipbotError } from "../../src/core/errors.ts";
import { type JobData, type JobState, terminalPhases } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import type { ExecutorPort } from "../../src/executors/port.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";
import { isChatRateLimitedError } from "../../src/notify/chat-port.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";
import {
  type SentActivity,
  startTeamsEmulator,
  type TeamsEmulator,
  type TeamsUser,
  teamsCardAction,
  teamsMessage,
} from "../emulators/teams/index.ts";
import { quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";

const appId = randomUUID();
const tenantId = randomUUID();
/** Teams' limits run 20× faster in the emulator; shipbot's pacing is scaled to match. */
const timeScale = 0.05;

// The example config grants this Entra object id the sre role; Teams may send it in upper case.
const sre: TeamsUser = { id: "29:sre", aadObjectId: "00000000-0000-0000-0000-0000000000A1", name: "sre-1" };
const stranger: TeamsUser = { id: "29:nobody", aadObjectId: randomUUID(), name: "sre-1" };

let teams: TeamsEmulator;
let kube: KubeEmulator;
let runtime: Runtime;
let adapter: TeamsAdapter;
let server: Server;
let storeRedis: Redis;
let baseUrl: string;
let config: Config;
let dir: string;
/** Deploys of web to staging wait here, so a job can be held in line for a Cancel click. */
let openGate: () => void = () => undefined;
let gate: Promise<void> = Promise.resolve();
/** The adapter's warnings and errors, as pino writes them. */
const logLines: Array<{ level: number; msg: string; conversation?: string }> = [];
const adapterLog = pino({ level: "warn" }, { write: (line: string) => logLines.push(JSON.parse(line)) });
/** Longest the adapter keeps a rate-limited reply waiting here (30 s in production). */
const replyMaxWaitMs = 2_500;

beforeAll(async () => {
  teams = await startTeamsEmulator({ appId, timeScale });
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
  dir = await mkdtemp(join(tmpdir(), "shipbot-teams-e2e-"));
  const kubeconfigPath = await kube.writeKubeconfig(join(dir, "kubeconfig"));
  config = testConfig();
  const kubeExecutor = createKubernetesExecutor({
    kubeConfig: loadKubeConfig({ kubeconfigPath }),
    pollMs: 20,
  });
  const executor: ExecutorPort = {
    ...kubeExecutor,
    deploy: async (target, image, ctx) => {
      if (target.namespace === "staging" && target.deployment === "web") await gate;
      return kubeExecutor.deploy(target, image, ctx);
    },
  };
  storeRedis = new Redis(redisUrl);

  let handlers: Pick<Runtime, "handle" | "handleAction"> | undefined;
  adapter = createTeamsAdapter({
    appId,
    appPassword: "unused-with-injected-credentials",
    appType: "SingleTenant",
    tenantId,
    handle: (command) => (handlers as Runtime).handle(command),
    handleAction: (action) => (handlers as Runtime).handleAction(action),
    log: adapterLog,
    conversationStore: createConversationStore({ redis: storeRedis, prefix: config.redisPrefix }),
    openIdMetadataUrl: teams.openIdMetadataUrl,
    credentialsFactory: { getToken: async (r) => teams.issuer.signBotToken(r.appId, r.audience) },
    pace: { intervalMs: 2000 * timeScale },
    retry: { baseDelayMs: 5, maxDelayMs: 20 },
    replyRetry: { maxWaitMs: replyMaxWaitMs },
  });
  runtime = await createRuntime({
    config,
    redisUrl,
    executor,
    chats: { teams: adapter.chat },
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
  openGate();
  await adapter?.stop();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await runtime?.close();
  await cleanupPrefix(storeRedis, config.redisPrefix);
  await storeRedis?.quit();
  await teams?.close();
  await kube?.close();
  await rm(dir, { recursive: true, force: true });
});

// ---- activities as Teams sends them ------------------------------------------------------------------

function channel(name: string, root = "1700000000001"): string {
  return `19:${name}@thread.tacv2;messageid=${root}`;
}

async function deliver(
  activity: unknown,
  token: string | null = teams.signActivityToken({ audience: appId }),
) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return fetch(`${baseUrl}/api/messages`, { method: "POST", headers, body: JSON.stringify(activity) });
}

function message(conversationId: string, text: string, from: TeamsUser, extra: { id?: string } = {}) {
  const inChannel = conversationId.startsWith("19:");
  return teamsMessage({
    serviceUrl: teams.serviceUrl,
    appId,
    tenantId,
    from,
    conversationId,
    conversationType: inChannel ? "channel" : "personal",
    text,
    mention: inChannel,
    ...extra,
  });
}

async function say(conversationId: string, text: string, from: TeamsUser): Promise<Response> {
  const res = await deliver(message(conversationId, text, from));
  expect(res.status).toBe(200);
  return res;
}

function click(conversationId: string, card: SentActivity, verb: string, from: TeamsUser) {
  const action = actionsOf(card).find((a) => a.verb === verb);
  if (!action) throw new Error(`no ${verb} button on ${card.id}`);
  return deliver(
    teamsCardAction({
      serviceUrl: teams.serviceUrl,
      appId,
      tenantId,
      from,
      conversationId,
      conversationType: conversationId.startsWith("19:") ? "channel" : "personal",
      verb: action.verb,
      value: action.data.value,
      replyToId: card.id,
    }),
  );
}

// ---- observing --------------------------------------------------------------------------------------

interface CardJson {
  body: Array<{ inlines: Array<{ text: string }> }>;
  actions?: Array<{ type: string; verb: string; data: { value: string } }>;
}

function cardOf(activity: Record<string, unknown>): CardJson {
  const [attachment] = activity.attachments as Array<{ contentType: string; content: CardJson }>;
  expect(attachment?.contentType).toBe("application/vnd.microsoft.card.adaptive");
  return (attachment as { content: CardJson }).content;
}

/** The card's text, one line per block. */
function textOf(activity: Record<string, unknown>): string {
  return cardOf(activity)
    .body.map((b) => b.inlines.map((i) => i.text).join(""))
    .join("\n");
}

function actionsOf(sent: SentActivity): NonNullable<CardJson["actions"]> {
  return cardOf(sent.activity).actions ?? [];
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function jobsIn(conversationId: string): Promise<Array<Job<JobData>>> {
  const base = conversationId.split(";")[0];
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
  for (const job of jobs) if (job?.id && job.data.conversation.channel === base) seen.set(job.id, job);
  return [...seen.values()];
}

/** Waits until every job of the conversation has ended and its card shows that final state. */
async function allCardsFinal(conversationId: string, expectedJobs: number): Promise<SentActivity[]> {
  return until(`${expectedJobs} final cards in ${conversationId}`, async () => {
    const jobs = await jobsIn(conversationId);
    if (jobs.length < expectedJobs) return undefined;
    const states = await Promise.all(jobs.map((j) => runtime.status.read(j.id as string)));
    if (states.some((s) => s === undefined || !terminalPhases.has(s.phase))) return undefined;
    const cards = teams.activities(conversationId).filter((a) => a.replyToId === undefined);
    const shown = (jobId: string, text: string) =>
      cards.some((c) => textOf(c.activity).includes(`job ${jobId}`) && textOf(c.activity).includes(text));
    return states.every((s) => s !== undefined && shown(s.jobId, s.text)) ? cards : undefined;
  });
}

const callsIn = (conversationId: string) =>
  teams.calls().filter((c) => c.conversationId.split(";")[0] === conversationId.split(";")[0]);

async function replies(conversationId: string, count: number): Promise<SentActivity[]> {
  return until(`${count} replies in ${conversationId}`, () => {
    const found = teams.activities(conversationId).filter((a) => a.replyToId !== undefined);
    return found.length >= count ? found : undefined;
  });
}

// ---- tests ------------------------------------------------------------------------------------------

describe("messages", () => {
  it("deploys from an @mention in a channel: one card posted into the thread, then edited in place to Deployed", async () => {
    const conversation = channel("deploy");
    await say(conversation, "deploy api staging v2", sre);
    const [card] = await allCardsFinal(conversation, 1);
    if (!card) throw new Error("no card");
    expect(card.conversationId).toBe(conversation);
    const calls = callsIn(conversation);
    expect(calls[0]).toMatchObject({ kind: "send", status: 201 });
    // A fast rollout may coalesce into the first post; whatever follows only edits that activity.
    for (const call of calls.slice(1))
      expect(call).toMatchObject({ kind: "update", status: 200, activityId: card.id });
    // Progress coalesces, so the card may skip states, but it only moves forward and ends Deployed.
    const states = card.history.map((v) => textOf(v).split("\n")[1] ?? "");
    const order = ["⏳ Queued", "▶", "✅ Deployed"];
    const rank = (t: string) => order.findIndex((prefix) => t.startsWith(prefix));
    expect(states.map(rank)).not.toContain(-1);
    expect(states.map(rank)).toEqual([...states.map(rank)].sort((a, b) => a - b));
    expect(states.at(-1)).toMatch(/^✅ Deployed ghcr\.io\/acme\/api:v2 in \d+s$/);
    expect(textOf(card.activity).split("\n")[0]).toBe("🚀 api → staging · v2");
    const [job] = await jobsIn(conversation);
    expect(job?.data.requestedBy).toEqual({
      id: "teams:00000000-0000-0000-0000-0000000000a1",
      name: "sre-1",
    });
    expect(actionsOf(card)).toEqual([
      {
        type: "Action.Execute",
        title: "Roll back",
        verb: "rollback",
        data: { value: job?.id },
        style: "destructive",
      },
    ]);
    expect(kube.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
    expect(teams.activities(conversation).filter((a) => a.replyToId !== undefined)).toEqual([]);
  });

  it("answers a typo in personal chat with one reply and does nothing else", async () => {
    const conversation = `a:personal-typo-${randomUUID()}`;
    const typo = message(conversation, "deploy apu staging v2", sre);
    expect((await deliver(typo)).status).toBe(200);
    const [answer] = await replies(conversation, 1);
    expect(answer?.replyToId).toBe(typo.id);
    expect(textOf(answer?.activity ?? {})).toBe("no service `apu`; did you mean `api`?");
    expect(await jobsIn(conversation)).toEqual([]);
    expect(teams.activities(conversation)).toHaveLength(1);
  });

  it("answers a character reference that names no character with what is wrong, not an internal error", async () => {
    const conversation = `a:personal-entity-${randomUUID()}`;
    await say(conversation, "deploy api staging &#99999999;", sre);
    const [answer] = await replies(conversation, 1);
    const text = textOf(answer?.activity ?? {});
    expect(text).not.toContain("something went wrong");
    expect(text).toContain("&#99999999;");
    expect(await jobsIn(conversation)).toEqual([]);
  });

  it("refuses someone without the role by Entra object id, whatever their display name", async () => {
    const conversation = `a:personal-deny-${randomUUID()}`;
    await say(conversation, "deploy api production v9", stranger);
    const [answer] = await replies(conversation, 1);
    expect(textOf(answer?.activity ?? {})).toContain(
      "not allowed: deploy api in production needs role `sre`; you hold no role",
    );
    expect(await jobsIn(conversation)).toEqual([]);
    expect(kube.deployment("production", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v1",
    );
  });

  it("makes no second job or card for a redelivered activity (same id)", async () => {
    const conversation = channel("redeliver");
    const activity = message(conversation, "deploy web staging v7", sre);
    const [first, again] = [await deliver(activity), await deliver(activity)];
    expect([first.status, again.status]).toEqual([200, 200]);
    const cards = await allCardsFinal(conversation, 1);
    await adapter.idle();
    expect(cards).toHaveLength(1);
    expect(textOf(cards[0]?.activity ?? {})).toContain("Deployed ghcr.io/acme/web:v7");
    expect(callsIn(conversation).filter((c) => c.kind === "send")).toHaveLength(1);
    expect(await jobsIn(conversation)).toHaveLength(1);
  });
});

describe("direct replies the connector rate-limits (429)", () => {
  const replyCalls = (conversation: string) => callsIn(conversation).filter((c) => c.kind === "reply");
  const undelivered = (conversation: string) =>
    logLines.filter((l) => l.conversation === conversation && /could not deliver a Teams reply/.test(l.msg));

  it("answers Teams at once and delivers the reply after the connector's Retry-After", async () => {
    const conversation = `a:personal-429-${randomUUID()}`;
    teams.fail({ status: 429, retryAfter: "1", kind: "reply", conversationId: conversation });
    const typo = message(conversation, "deploy apu staging v2", sre);
    const started = Date.now();
    expect((await deliver(typo)).status).toBe(200);
    // The request is not held for the Retry-After: Bot Framework gives a bot only seconds.
    expect(Date.now() - started).toBeLessThan(900);
    const [answer] = await until(
      "the retried reply",
      () => {
        const found = teams.activities(conversation).filter((a) => a.replyToId !== undefined);
        return found.length > 0 ? found : undefined;
      },
      replyMaxWaitMs + 2_000,
    );
    expect(answer?.replyToId).toBe(typo.id);
    expect(textOf(answer?.activity ?? {})).toBe("no service `apu`; did you mean `api`?");
    const [limited, sent] = replyCalls(conversation);
    expect([limited?.status, sent?.status]).toEqual([429, 201]);
    expect((sent?.at ?? 0) - (limited?.at ?? 0)).toBeGreaterThanOrEqual(950);
    await adapter.idle();
    expect(teams.activities(conversation)).toHaveLength(1);
    expect(undelivered(conversation)).toEqual([]);
  });

  it("keeps trying while Teams keeps answering 429, then logs at error level that the person got no answer", async () => {
    const conversation = `a:personal-429-again-${randomUUID()}`;
    teams.fail({ status: 429, retryAfter: "1", times: 10, kind: "reply", conversationId: conversation });
    await say(conversation, "whoami", sre);
    await until("the reply given up", () => (undelivered(conversation).length > 0 ? true : undefined), 6_000);
    await adapter.idle();
    // 1 s apart within the 2.5 s a person is kept waiting here: the first send and two more.
    expect(replyCalls(conversation).map((c) => c.status)).toEqual([429, 429, 429]);
    expect(teams.activities(conversation)).toEqual([]);
    expect(undelivered(conversation)).toMatchObject([{ level: 50 }]);
  });

  it("does not wait out a Retry-After longer than a person waits: logs at error level at once", async () => {
    const conversation = `a:personal-429-long-${randomUUID()}`;
    teams.fail({ status: 429, retryAfter: "60", kind: "reply", conversationId: conversation });
    await say(conversation, "help", sre);
    await adapter.idle();
    expect(replyCalls(conversation).map((c) => c.status)).toEqual([429]);
    expect(undelivered(conversation)).toMatchObject([{ level: 50 }]);
    expect(undelivered(conversation)[0]?.msg).toContain("asked to wait 60000 ms");
  });
});

describe("card buttons (Action.Execute)", () => {
  it("Roll back: a stranger's click is refused with the reason, the sre's click rolls back", async () => {
    const conversation = channel("click");
    await say(conversation, "deploy api staging v3", sre);
    const [deployCard] = await allCardsFinal(conversation, 1);
    if (!deployCard) throw new Error("no deploy card");

    const refused = await click(conversation, deployCard, "rollback", stranger);
    expect(refused.status).toBe(200);
    expect(await refused.json()).toEqual({
      statusCode: 200,
      type: "application/vnd.microsoft.activity.message",
      value: "not allowed: rollback api in staging needs role `deployer` or `sre`; you hold no role",
    });
    expect(await jobsIn(conversation)).toHaveLength(1);

    const accepted = await click(conversation, deployCard, "rollback", sre);
    expect(accepted.status).toBe(200);
    const body = (await accepted.json()) as { statusCode: number; type: string; value: string };
    expect(body).toMatchObject({ statusCode: 200, type: "application/vnd.microsoft.activity.message" });
    const cards = await allCardsFinal(conversation, 2);
    const rollbackCard = cards.find((c) => c.id !== deployCard.id);
    expect(rollbackCard?.conversationId).toBe(conversation);
    expect(textOf(rollbackCard?.activity ?? {})).toContain("Rolled back to ghcr.io/acme/api:v2");
    expect((await jobsIn(conversation)).map((j) => j.data.kind).sort()).toEqual(["deploy", "rollback"]);
    expect(kube.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
  });

  it("Cancel: a job waiting in line is cancelled from its card, by someone allowed to", async () => {
    gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    const conversation = `a:personal-cancel-${randomUUID()}`;
    await say(conversation, "deploy web staging v5", sre);
    const [running] = await until("first job running", async () => {
      const jobs = await jobsIn(conversation);
      const states = await Promise.all(jobs.map((j) => runtime.status.read(j.id as string)));
      return states.length === 1 && states[0]?.phase === "running" ? states : undefined;
    });
    await say(conversation, "deploy web staging v6", sre);
    const waitingCard = await until("a card with Cancel", () =>
      teams
        .activities(conversation)
        .find((a) => a.replyToId === undefined && actionsOf(a).some((x) => x.verb === "cancel")),
    );
    const refused = await click(conversation, waitingCard, "cancel", stranger);
    expect(((await refused.json()) as { value: string }).value).toMatch(/^not allowed: cancel/);
    const cancelledId = actionsOf(waitingCard).find((x) => x.verb === "cancel")?.data.value ?? "";
    const accepted = await click(conversation, waitingCard, "cancel", sre);
    expect(accepted.status).toBe(200);
    expect(((await accepted.json()) as { value: string }).value).toContain(cancelledId);
    openGate();
    // A cancelled job leaves BullMQ; its state and card remain.
    const cancelledCard = await until("the cancelled card", () => {
      const card = teams.activities(conversation).find((a) => a.id === waitingCard.id);
      return card && textOf(card.history.at(-1) ?? {}).includes("🚫") ? card : undefined;
    });
    expect(textOf(cancelledCard.activity)).not.toContain("Deployed");
    expect((await runtime.status.read(cancelledId))?.phase).toBe("cancelled");
    await allCardsFinal(conversation, 1);
    expect((await runtime.status.read(running?.jobId ?? ""))?.phase).toBe("succeeded");
    expect(kube.deployment("staging", "web").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/web:v5",
    );
  });
});

describe("authentication: refused with 401, and nothing happens", () => {
  async function expectRefused(conversation: string, token: string | null) {
    const res = await deliver(message(conversation, "deploy api staging v66", sre), token);
    expect(res.status).toBe(401);
    await adapter.idle();
    expect(await jobsIn(conversation)).toEqual([]);
    expect(callsIn(conversation)).toEqual([]);
    expect(
      await storeRedis.exists(`${config.redisPrefix}:teams:conversation:${conversation.split(";")[0]}`),
    ).toBe(0);
  }

  it("no token", async () => {
    await expectRefused(channel("auth-none"), null);
  });

  it("a token for another app (wrong audience)", async () => {
    await expectRefused(channel("auth-aud"), teams.signActivityToken({ audience: randomUUID() }));
  });

  it("a serviceurl claim that does not match the activity's serviceUrl", async () => {
    await expectRefused(
      channel("auth-serviceurl"),
      teams.signActivityToken({ audience: appId, serviceUrl: "https://attacker.example/" }),
    );
  });

  it("a signature by a key the metadata does not publish (401, not 500)", async () => {
    await expectRefused(channel("auth-key"), teams.signActivityToken({ audience: appId, foreignKey: true }));
    await expectRefused(
      channel("auth-kid"),
      teams.signActivityToken({ audience: appId, kid: "no-such-kid" }),
    );
  });

  it("expired beyond botbuilder's 300 s clock skew", async () => {
    await expectRefused(
      channel("auth-expired"),
      teams.signActivityToken({ audience: appId, expiresIn: -400 }),
    );
  });
});

describe("one bot, two platforms", () => {
  it("the same command from Slack and from Teams makes the same job data and the same card content", async () => {
    const conversation = `a:personal-same-${randomUUID()}`;
    await say(conversation, "deploy web staging v9", sre);
    const [teamsCard] = await allCardsFinal(conversation, 1);
    const [teamsJob] = await jobsIn(conversation);
    // The same words from Slack, as the Slack adapter hands them to the same handler.
    const fromSlack = await runtime.handle({
      id: `slack-trigger-${randomUUID()}`,
      user: { id: "slack:U0SRE00001", name: "sre-1", groups: [] },
      conversation: { platform: "slack", channel: "C0SAME" },
      text: "deploy web staging v9",
      receivedAt: Date.now(),
    });
    expect(fromSlack.ok).toBe(true);
    const slackJobId = fromSlack.jobIds[0] as string;
    const slackFinal = await until("slack job final", async () => {
      const state = await runtime.status.read(slackJobId);
      return state && terminalPhases.has(state.phase) ? state : undefined;
    });
    const teamsFinal = (await runtime.status.read(teamsJob?.id as string)) as JobState;

    const platformNeutral = ({
      conversation: _c,
      commandId: _i,
      requestedAt: _a,
      traceId: _t,
      requestedBy,
      ...rest
    }: JobData) => ({
      ...rest,
      requestedBy: requestedBy.name,
    });
    expect(platformNeutral(teamsFinal.data)).toEqual(platformNeutral(slackFinal.data));
    expect(teamsFinal.data.conversation.platform).toBe("teams");
    expect(slackFinal.data.conversation.platform).toBe("slack");

    // Cards come from the shared renderJobCard: at the same point of a job, the data each platform
    // produced renders the same card (the second deploy starts from v9, so the states themselves differ).
    for (const phase of ["queued", "succeeded"] as const) {
      const at = { ...teamsFinal, phase, jobId: "j0same0000000" };
      expect(renderJobCard({ ...at, data: teamsFinal.data })).toEqual(
        renderJobCard({ ...at, data: slackFinal.data }),
      );
    }
    expect(cardOf(teamsCard?.activity ?? {})).toEqual(renderAdaptiveCard(renderJobCard(teamsFinal)));
  });
});

describe("approval reminders", () => {
  it("reminds once in the request card's reply chain, naming the roles still needed", async () => {
    const conversation = channel("remind");
    await say(conversation, "deploy web production v6", sre);
    const card = await until("the approval card", () =>
      teams.activities(conversation).find((a) => actionsOf(a).some((b) => b.verb === "approve")),
    );
    const jobId = actionsOf(card).find((b) => b.verb === "approve")?.data.value as string;
    // Due now rather than twenty minutes from now.
    await runtime.redis.zadd(runtime.keys.approvalReminders, Date.now() - 1, jobId);
    const reminder = await until("the reminder", () =>
      teams.activities(conversation).find((a) => textOf(a.activity).startsWith("⏰ Approval reminder")),
    );
    // The card sits in the mention's reply chain, so the reminder goes into the same chain.
    expect(reminder.conversationId).toBe(conversation);
    expect(textOf(reminder.activity)).toMatch(
      /^⏰ Approval reminder · 🚀 web → production · v6\nStill needs 2 more approvals from sre · expires \d{2}:\d{2} UTC \(in (30|29) min\)$/,
    );
    await sleep(1_000);
    expect(
      teams.activities(conversation).filter((a) => textOf(a.activity).startsWith("⏰ Approval reminder")),
    ).toHaveLength(1);
  });

  it("replies under a card in a channel's reply chain, and into the chat itself in a personal chat", async () => {
    const card = { tone: "pending" as const, title: "probe", lines: ["x"], fields: [], actions: [] };
    const room = `19:replies-${randomUUID()}@thread.tacv2`;
    await say(channel(room.slice(3, -13), "1700000000009"), "help", sre);
    await replies(room, 1);
    await adapter.chat.post({ platform: "teams", channel: room, thread: "1700000000077" }, card);
    const personal = `a:personal-replies-${randomUUID()}`;
    await say(personal, "help", sre);
    await replies(personal, 1);
    await adapter.chat.post({ platform: "teams", channel: personal, thread: "1700000000078" }, card);
    const sends = teams.calls().filter((c) => c.kind === "send" && c.status === 201);
    expect(sends.map((c) => c.conversationId)).toContain(`${room};messageid=1700000000077`);
    expect(sends.filter((c) => c.conversationId.startsWith(personal)).map((c) => c.conversationId)).toEqual([
      personal,
    ]);
  });
});

describe("connector failures seen by the chat port", () => {
  const card = { tone: "info" as const, title: "probe", lines: ["x"], fields: [], actions: [] };

  async function knownConversation(): Promise<string> {
    const conversation = `a:personal-faults-${randomUUID()}`;
    await say(conversation, "help", sre);
    await replies(conversation, 1);
    return conversation;
  }

  it("retries 412 and 502 with backoff, then posts once", async () => {
    const conversation = await knownConversation();
    teams.fail({ status: 412, kind: "send", conversationId: conversation });
    teams.fail({ status: 502, kind: "send", conversationId: conversation });
    const ref = await adapter.chat.post({ platform: "teams", channel: conversation }, card);
    const sends = callsIn(conversation).filter((c) => c.kind === "send");
    expect(sends.map((c) => c.status)).toEqual([412, 502, 201]);
    expect(teams.activities(conversation).find((a) => a.id === ref)).toBeDefined();
  });

  it("gives a 504 that outlasts the retries back to the notifier as retryable", async () => {
    const conversation = await knownConversation();
    teams.fail({ status: 504, times: 3, kind: "send", conversationId: conversation });
    const error = await adapter.chat.post({ platform: "teams", channel: conversation }, card).catch((e) => e);
    expect(isShipbotError(error) && error.code === "upstream" && error.retryable).toBe(true);
    expect(
      callsIn(conversation)
        .filter((c) => c.kind === "send")
        .map((c) => c.status),
    ).toEqual([504, 504, 504]);
  });

  it("turns a 429 into ChatRateLimitedError with Retry-After, without retrying inside the SDK", async () => {
    const conversation = await knownConversation();
    teams.fail({ status: 429, retryAfter: "7", kind: "send", conversationId: conversation });
    const error = await adapter.chat.post({ platform: "teams", channel: conversation }, card).catch((e) => e);
    expect(isChatRateLimitedError(error) && error.retryAfterMs).toBe(7000);
    expect(
      callsIn(conversation)
        .filter((c) => c.kind === "send")
        .map((c) => c.status),
    ).toEqual([429]);
  });

  it("reports an edit of a vanished message as not_found (the notifier then posts anew)", async () => {
    const conversation = await knownConversation();
    const error = await adapter.chat
      .update({ platform: "teams", channel: conversation }, "no-such-activity", card)
      .catch((e) => e);
    expect(isShipbotError(error) && error.code === "not_found").toBe(true);
  });

  it("cannot post where the bot never heard from anyone, and says why", async () => {
    const error = await adapter.chat
      .post({ platform: "teams", channel: "a:never-seen" }, card)
      .catch((e) => e);
    expect(isShipbotError(error) && error.code === "not_found" && !error.retryable).toBe(true);
    expect(String(error.message)).toContain("only where it has received a message");
  });

  it("paces per conversation at the hourly per-thread budget", () => {
    const thread = { platform: "teams" as const, channel: "19:x@thread.tacv2", thread: "42" };
    expect(adapter.chat.pace?.("post", thread)).toEqual({
      key: "teams:19:x@thread.tacv2;messageid=42",
      intervalMs: 100,
    });
    expect(adapter.chat.pace?.("update", thread)).toEqual(adapter.chat.pace?.("post", thread));
  });
});
