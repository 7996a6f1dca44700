/**
 * An approval request asked for in Slack and mirrored into a Teams channel, end to end: both real
 * adapters (Bolt and botbuilder) on one server, the Slack and Teams emulators, a real Redis runtime and
 * the Kubernetes emulator. One approval is given on the Slack card, one on the Teams copy.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSlackAdapter, type SlackAdapter, slackGroupIdsOf } from "../../src/adapters/slack/index.ts";
import {
  createConversationStore,
  createTeamsAdapter,
  type TeamsAdapter,
} from "../../src/adapters/teams/index.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import { createHttpServer } from "../../src/http/create-http-server.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";
import { type SlackEmulator, type SlackMessage, startSlackEmulator } from "../emulators/slack/index.ts";
import {
  type SentActivity,
  startTeamsEmulator,
  type TeamsEmulator,
  type TeamsUser,
  teamsCardAction,
  teamsMessage,
} from "../emulators/teams/index.ts";
import { newTriggerId, sendSlackRequest, slashCommandBody } from "../helpers/slack-requests.ts";
import { quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";

const signingSecret = `test-secret-${randomUUID()}`;
const botToken = "xoxb-test-token";
const appId = randomUUID();
const tenantId = randomUUID();
const timeScale = 0.05;

const slackSre = { id: "U0SRE00001", name: "sre-1" };
const slackSre2 = { id: "U0SRE00002", name: "sre-2" };
// The example config grants this Entra object id the sre role.
const teamsSre: TeamsUser = {
  id: "29:sre",
  aadObjectId: "00000000-0000-0000-0000-0000000000a1",
  name: "sre-teams",
};
const teamsGuest: TeamsUser = { id: "29:guest", aadObjectId: randomUUID(), name: "guest" };
const approvalsChannel = "19:approvals@thread.tacv2";

let slack: SlackEmulator;
let teams: TeamsEmulator;
let kube: KubeEmulator;
let slackAdapter: SlackAdapter;
let teamsAdapter: TeamsAdapter;
let runtime: Runtime;
let server: Server;
let storeRedis: Redis;
let baseUrl: string;
let config: Config;
let dir: string;

beforeAll(async () => {
  slack = await startSlackEmulator({
    botToken,
    timeScale,
    users: [slackSre, slackSre2],
    usergroups: [{ id: "S0SRE", handle: "sre", users: [slackSre2.id] }],
    channels: ["C0RELEASES"],
  });
  teams = await startTeamsEmulator({ appId, timeScale });
  kube = await startKubeEmulator({
    stepMs: 15,
    msPerSecond: 10,
    deployments: [{ namespace: "production", name: "api", image: "ghcr.io/acme/api:v1", replicas: 2 }],
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-mirror-e2e-"));
  const kubeconfigPath = await kube.writeKubeconfig(join(dir, "kubeconfig"));
  const base = testConfig();
  const production = base.environments.production as Config["environments"][string];
  config = {
    ...base,
    environments: {
      ...base.environments,
      production: {
        ...production,
        approval: {
          ...(production.approval as NonNullable<typeof production.approval>),
          mirrorTo: [{ platform: "teams", channel: approvalsChannel }],
        },
      },
    },
  };
  storeRedis = new Redis(redisUrl);

  let handlers: Pick<Runtime, "handle" | "handleAction"> | undefined;
  const handle: Runtime["handle"] = (command) => (handlers as Runtime).handle(command);
  const handleAction: Runtime["handleAction"] = (action) => (handlers as Runtime).handleAction(action);
  slackAdapter = createSlackAdapter({
    signingSecret,
    botToken,
    apiUrl: `${slack.url}/api/`,
    handle,
    handleAction,
    log: quietLog,
    groupIds: slackGroupIdsOf(config),
    pace: { postIntervalMs: 1100 * timeScale, updateIntervalMs: 1250 * timeScale },
  });
  teamsAdapter = createTeamsAdapter({
    appId,
    appPassword: "unused-with-injected-credentials",
    appType: "SingleTenant",
    tenantId,
    handle,
    handleAction,
    log: quietLog,
    conversationStore: createConversationStore({ redis: storeRedis, prefix: config.redisPrefix }),
    openIdMetadataUrl: teams.openIdMetadataUrl,
    credentialsFactory: { getToken: async (r) => teams.issuer.signBotToken(r.appId, r.audience) },
    pace: { intervalMs: 2000 * timeScale },
    retry: { baseDelayMs: 5, maxDelayMs: 20 },
  });
  runtime = await createRuntime({
    config,
    redisUrl,
    executor: createKubernetesExecutor({ kubeConfig: loadKubeConfig({ kubeconfigPath }), pollMs: 20 }),
    chats: { slack: slackAdapter.chat, teams: teamsAdapter.chat },
    log: quietLog,
    accept: true,
    work: true,
    notify: true,
  });
  handlers = runtime;
  await slackAdapter.start();
  await teamsAdapter.start();
  server = createHttpServer({
    log: quietLog,
    ready: async () => ({ ok: true, reasons: [] }),
    routes: { ...slackAdapter.routes, ...teamsAdapter.routes },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await slackAdapter?.stop();
  await teamsAdapter?.stop();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await runtime?.close();
  await cleanupPrefix(storeRedis, config.redisPrefix);
  await storeRedis?.quit();
  await slack?.close();
  await teams?.close();
  await kube?.close();
  await rm(dir, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Posts a Teams activity to the bot, signed as the Bot Framework signs it. */
function deliver(activity: unknown): Promise<Response> {
  return fetch(`${baseUrl}/api/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${teams.signActivityToken({ audience: appId })}`,
    },
    body: JSON.stringify(activity),
  });
}

interface TeamsCard {
  body: Array<{ inlines: Array<{ text: string }> }>;
  actions?: Array<{ verb: string; data: { value: string } }>;
}

const teamsCardOf = (activity: Record<string, unknown>) =>
  (activity.attachments as Array<{ content: TeamsCard }>)[0]?.content as TeamsCard;
const teamsTextOf = (activity: Record<string, unknown>) =>
  teamsCardOf(activity)
    .body.map((b) => b.inlines.map((i) => i.text).join(""))
    .join("\n");

/** A click on the Teams copy, in the reply chain the card starts (as Teams sends it). */
async function clickInTeams(card: SentActivity, verb: string, from: TeamsUser): Promise<string> {
  const action = teamsCardOf(card.activity).actions?.find((a) => a.verb === verb);
  if (!action) throw new Error(`no ${verb} button on ${card.id}`);
  const res = await deliver(
    teamsCardAction({
      serviceUrl: teams.serviceUrl,
      appId,
      tenantId,
      from,
      conversationId: `${approvalsChannel};messageid=${card.id}`,
      conversationType: "channel",
      verb,
      value: action.data.value,
      replyToId: card.id,
    }),
  );
  expect(res.status).toBe(200);
  return ((await res.json()) as { value: string }).value;
}

function slackButton(message: SlackMessage, prefix: string): { action_id: string; value: string } {
  for (const block of message.blocks ?? []) {
    const elements = (block as { elements?: Array<{ action_id: string; value: string }> }).elements ?? [];
    const found = elements.find((e) => e.action_id?.startsWith(prefix));
    if (found) return found;
  }
  throw new Error(`no ${prefix} button on ${message.ts}`);
}

/** A click on the Slack card, as Slack posts block_actions. */
async function clickInSlack(message: SlackMessage, prefix: string, user: { id: string; name: string }) {
  const button = slackButton(message, prefix);
  const payload = {
    type: "block_actions",
    user: { id: user.id, username: user.name, name: user.name, team_id: "T0EMULATED" },
    api_app_id: "A0SHIPBOT",
    container: { type: "message", message_ts: message.ts, channel_id: message.channel },
    trigger_id: newTriggerId(),
    team: { id: "T0EMULATED", domain: "emulated" },
    channel: { id: message.channel, name: message.channel.toLowerCase() },
    message: { type: "message", ts: message.ts, text: message.text, blocks: message.blocks },
    response_url: `${baseUrl}/unused`,
    actions: [{ ...button, type: "button", block_id: "b1", action_ts: `${Date.now() / 1000}` }],
  };
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  expect((await sendSlackRequest(baseUrl, signingSecret, body)).status).toBe(200);
}

describe("an approval request mirrored from Slack to Teams", () => {
  it("is approved once in Slack and once in Teams, runs once, and both cards end Deployed", async () => {
    // Teams lets a bot post only where it has heard from someone: the channel's reference is stored now.
    const hello = teamsMessage({
      serviceUrl: teams.serviceUrl,
      appId,
      tenantId,
      from: teamsSre,
      conversationId: `${approvalsChannel};messageid=1700000000001`,
      conversationType: "channel",
      text: "whoami",
      mention: true,
    });
    expect((await deliver(hello)).status).toBe(200);

    const slash = slashCommandBody({
      command: "/deploy",
      text: "api production v2",
      user: slackSre,
      channel: "C0RELEASES",
      responseUrl: `${baseUrl}/unused`,
    });
    expect((await sendSlackRequest(baseUrl, signingSecret, slash)).status).toBe(200);

    const request = await until("the Slack request card", () =>
      slack.messages("C0RELEASES").find((m) => m.text.includes("Needs 2 approvals")),
    );
    const jobId = slackButton(request, "shipbot:approve").value;
    const copy = await until("the Teams copy", () =>
      teams
        .activities(approvalsChannel)
        .find((a) => a.replyToId === undefined && teamsTextOf(a.activity).includes(`job ${jobId}`)),
    );
    expect(teamsTextOf(copy.activity)).toContain("Needs 2 approvals from sre (not sre-1)");
    expect(teamsTextOf(copy.activity)).toContain("mirrored from Slack");
    expect(teamsCardOf(copy.activity).actions?.map((a) => a.verb)).toEqual(["approve", "reject"]);

    expect(await clickInTeams(copy, "approve", teamsGuest)).toBe(
      "not allowed: approving needs role `sre`; you hold no role",
    );

    await clickInSlack(request, "shipbot:approve", slackSre2);
    await until("the approval counted", () =>
      slack.ephemerals("C0RELEASES").find((e) => e.user === slackSre2.id && e.text.includes("1 of 2")),
    );
    expect(await clickInTeams(copy, "approve", teamsSre)).toBe(
      `Approved by sre-2, sre-teams: ${jobId} is queued`,
    );

    const slackFinal = await until("the Slack card Deployed", () =>
      slack.messages("C0RELEASES").find((m) => m.ts === request.ts && m.text.includes("Deployed")),
    );
    const teamsFinal = await until("the Teams copy Deployed", () =>
      teams
        .activities(approvalsChannel)
        .find((a) => a.id === copy.id && teamsTextOf(a.activity).includes("Deployed")),
    );
    expect(slackFinal.text).toContain("Deployed ghcr.io/acme/api:v2");
    expect(teamsTextOf(teamsFinal.activity)).toContain("Deployed ghcr.io/acme/api:v2");
    expect(teamsTextOf(teamsFinal.activity)).toContain("sre-2, sre-teams");
    expect(kube.writes("production", "api")).toBe(1);
    // One message on each platform, edited in place.
    expect(slack.calls("chat.postMessage").filter((c) => c.args.channel === "C0RELEASES")).toHaveLength(1);
    const sends = teams
      .calls()
      .filter((c) => c.kind === "send" && c.conversationId === approvalsChannel && c.status === 201);
    expect(sends).toHaveLength(1);
  });
});
