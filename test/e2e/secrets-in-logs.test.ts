/**
 * Secrets never reach the logs: the real CLI (`serve` with Slack over HTTP, and `worker`) runs with
 * distinctive secret values and LOG_LEVEL=debug, handles commands that succeed, fail and are refused
 * (including a forged request and an answer that cannot be delivered), and nothing it prints may
 * contain a secret, whole or encoded.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import type { Config } from "../../src/core/config.ts";
import { type KubeEmulator, startKubeEmulator } from "../emulators/kubernetes/server.ts";
import { type SlackEmulator, startSlackEmulator } from "../emulators/slack/index.ts";
import { freePort } from "../helpers/free-port.ts";
import { sendSlackRequest, slashCommandBody } from "../helpers/slack-requests.ts";
import { type ShipbotProcess, spawnShipbot, writeConfig } from "../helpers/spawn-shipbot.ts";
import { redisUrl, testConfig } from "../helpers/test-runtime.ts";

const secrets = {
  botToken: `xoxb-SECRET-${randomBytes(12).toString("hex")}`,
  signingSecret: `sign-SECRET-${randomBytes(12).toString("hex")}`,
  redisPassword: `redis-SECRET-${randomBytes(12).toString("hex")}`,
};

const dev = { id: "U0DEMO0001", name: "dev-1" };
const stranger = { id: "U0NOBODY01", name: "nobody" };

let slack: SlackEmulator;
let kube: KubeEmulator;
let dir: string;
let config: Config;
let serveUrl: string;
const processes: ShipbotProcess[] = [];

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const output = processes.map((p) => p.output()).join("\n");
      throw new Error(`timed out waiting for ${what}; output:\n${output.slice(-4000)}`);
    }
    await sleep(25);
  }
}

beforeAll(async () => {
  slack = await startSlackEmulator({
    botToken: secrets.botToken,
    timeScale: 0.05,
    users: [dev, stranger],
    channels: ["C0DEPLOY", "C0TYPO", "C0DENY", "C0WHO"],
    otherChannels: ["C0NOTIN"],
  });
  kube = await startKubeEmulator({
    stepMs: 20,
    msPerSecond: 10,
    deployments: [
      { namespace: "staging", name: "api", image: "ghcr.io/acme/api:v1", replicas: 2 },
      { namespace: "production", name: "api", image: "ghcr.io/acme/api:v1", replicas: 2 },
    ],
  });
  dir = await mkdtemp(join(tmpdir(), "shipbot-secrets-"));
  config = testConfig();
  const port = await freePort();
  serveUrl = `http://127.0.0.1:${port}`;
  // The local Redis has no password; ioredis still sends this one (and carries on when Redis says it
  // needs none), so it is a real secret the processes hold and could print.
  const url = new URL(redisUrl);
  url.username = "";
  url.password = secrets.redisPassword;
  const env = {
    SHIPBOT_CONFIG: await writeConfig(dir, config),
    KUBECONFIG: await kube.writeKubeconfig(join(dir, "kubeconfig")),
    REDIS_URL: url.toString(),
    HOST: "127.0.0.1",
    LOG_LEVEL: "debug",
    SLACK_BOT_TOKEN: secrets.botToken,
    SLACK_SIGNING_SECRET: secrets.signingSecret,
    SLACK_API_URL: `${slack.url}/api/`,
  };
  processes.push(spawnShipbot(["serve"], { ...env, PORT: String(port) }));
  processes.push(spawnShipbot(["worker"], { ...env, PORT: String(await freePort()) }));
  await until("serve to answer", async () => {
    const res = await fetch(`${serveUrl}/readyz`).catch(() => undefined);
    return res?.ok ? true : undefined;
  });
});

afterAll(async () => {
  for (const p of processes) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    await p.exited;
  }
  const redis = new Redis(redisUrl);
  await cleanupPrefix(redis, config.redisPrefix);
  await redis.quit();
  await slack?.close();
  await kube?.close();
  await rm(dir, { recursive: true, force: true });
});

function slash(
  text: string,
  user: { id: string; name: string },
  channel: string,
  signWith = secrets.signingSecret,
): Promise<Response> {
  // Nobody listens at this response_url: the fallback answer fails, and that failure is logged.
  const body = slashCommandBody({
    command: "/shipbot",
    text,
    user,
    channel,
    responseUrl: "http://127.0.0.1:9",
  });
  return sendSlackRequest(serveUrl, signWith, body);
}

/** Every form in which a secret could leak: as is, URL-encoded, base64 (basic auth), and its random part. */
function formsOf(secret: string): string[] {
  const random = secret.split("-").at(-1) as string;
  return [secret, encodeURIComponent(secret), Buffer.from(secret).toString("base64"), random];
}

describe("secrets in logs", () => {
  it("never prints a secret, whatever the processes log at debug level", async () => {
    expect((await slash("deploy api staging v2", dev, "C0DEPLOY")).status).toBe(200);
    expect((await slash("deploy apu staging v2", dev, "C0TYPO")).status).toBe(200);
    expect((await slash("deploy api production v9", stranger, "C0DENY")).status).toBe(200);
    expect((await slash("whoami", dev, "C0WHO")).status).toBe(200);
    expect((await slash("help", dev, "C0NOTIN")).status).toBe(200);
    // Forged: signed with another secret.
    expect((await slash("deploy api staging v3", dev, "C0DEPLOY", `${secrets.signingSecret}x`)).status).toBe(
      401,
    );

    await until("the deploy's card to say Deployed", () =>
      slack.messages("C0DEPLOY").find((m) => m.text.includes("Deployed ghcr.io/acme/api:v2")),
    );
    await until("the refusals and answers", () =>
      slack.ephemerals("C0TYPO").length > 0 &&
      slack.ephemerals("C0DENY").length > 0 &&
      slack.ephemerals("C0WHO").length > 0
        ? true
        : undefined,
    );
    await until("the undeliverable answer to be logged", () =>
      processes[0]?.output().includes("could not deliver an answer") ? true : undefined,
    );

    for (const p of processes) p.child.kill("SIGTERM");
    const codes = await Promise.all(processes.map((p) => p.exited));
    expect(codes).toEqual([0, 0]);

    const output = processes.map((p) => p.output()).join("\n");
    // The processes did log at debug level, so the check below looked at something.
    expect(output).toContain('"level":20');
    expect(output).toContain("shipbot started");
    for (const [name, secret] of Object.entries(secrets)) {
      for (const form of formsOf(secret)) {
        const at = output.indexOf(form);
        expect(at < 0 ? "" : `${name} leaked: …${output.slice(Math.max(0, at - 200), at + 80)}…`).toBe("");
      }
    }
  });
});
