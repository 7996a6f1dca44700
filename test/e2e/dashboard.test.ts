/**
 * The queue dashboard in a real browser: Debian's Chromium, driven by playwright-core, logs in with
 * basic auth and sees shipbot's operations queue; without credentials it gets 401, and no request can
 * change the queue.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import type { ExecutorPort } from "../../src/executors/port.ts";
import { createDashboardRoute } from "../../src/http/create-dashboard-route.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";

const chromiumPath = "/usr/bin/chromium";
const username = "ops";
const password = `pw-${randomBytes(12).toString("hex")}`;
const token = `tok-${randomBytes(16).toString("hex")}`;
const displayName = "shipbot operations";

let config: Config;
let runtime: Runtime;
let server: Server;
let base: string;
let jobId: string;
const dirs: string[] = [];

/** Never called: no worker runs here, so the queued job stays visible. */
const unusedExecutor = new Proxy({} as ExecutorPort, {
  get: () => () => Promise.reject(new Error("no executor in this test")),
});

beforeAll(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `${chromiumPath} is missing: run scripts/install-test-tools.sh (Debian package chromium)`,
    );
  }
  config = testConfig();
  runtime = await createRuntime({
    config,
    redisUrl,
    executor: unusedExecutor,
    chats: {},
    log: quietLog,
    accept: true,
    work: false,
    notify: false,
  });
  const reply = await runtime.handle(chatCommand("/deploy api staging v2", demoUser));
  jobId = reply.jobIds[0] as string;
  const dashboard = createDashboardRoute({
    queues: [{ queue: runtime.ops.queue, displayName }],
    auth: { token, username, password },
  });
  server = createServer((req, res) => {
    if (!(req.url ?? "").startsWith(dashboard.basePath)) {
      res.writeHead(404).end();
      return;
    }
    Promise.resolve(dashboard.handler(req, res)).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}${dashboard.basePath}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await runtime?.close();
  const redis = new Redis(redisUrl);
  await cleanupPrefix(redis, config.redisPrefix);
  await redis.quit();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
const queuePath = `/api/queues/${encodeURIComponent("{ops}")}`;

describe("queue dashboard", () => {
  it("asks for credentials and refuses wrong ones", async () => {
    const anonymous = await fetch(`${base}/`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
    expect(await anonymous.text()).not.toContain("{ops}");
    for (const authorization of [
      basic(username, `${password}x`),
      basic("admin", password),
      `Bearer ${token.slice(0, -1)}`,
      "Bearer",
      "Basic !!!",
    ]) {
      expect((await fetch(`${base}/api/queues`, { headers: { authorization } })).status).toBe(401);
    }
    expect(
      (await fetch(`${base}/api/queues`, { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
  });

  it("refuses every mutating call, and bull-board itself runs the queue read-only", async () => {
    const authorization = basic(username, password);
    const attempts: Array<[string, string]> = [
      ["PUT", `${queuePath}/pause`],
      ["PUT", "/api/queues/pause"],
      ["PUT", `${queuePath}/promote`],
      ["PUT", `${queuePath}/${jobId}/promote`],
      ["PUT", `${queuePath}/${jobId}/clean`],
      ["PUT", `${queuePath}/retry/failed`],
      ["PUT", `${queuePath}/clean/completed`],
      ["PUT", `${queuePath}/obliterate`],
      ["POST", `${queuePath}/add`],
      ["PATCH", `${queuePath}/${jobId}/update-data`],
      ["DELETE", `${queuePath}/${jobId}`],
    ];
    for (const [method, path] of attempts) {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization, "content-type": "application/json" },
        body: method === "DELETE" ? null : JSON.stringify({ name: "k8s.deploy", data: {} }),
      });
      expect({ method, path, status: res.status }).toEqual({ method, path, status: 405 });
    }
    const listed = (await (await fetch(`${base}/api/queues`, { headers: { authorization } })).json()) as {
      queues: Array<{ name: string; readOnlyMode: boolean; counts: Record<string, number> }>;
    };
    expect(listed.queues).toEqual([
      expect.objectContaining({
        name: "{ops}",
        readOnlyMode: true,
        counts: expect.objectContaining({ prioritized: 1 }),
      }),
    ]);
    const job = await runtime.ops.queue.getJob(jobId);
    expect(await job?.getState()).toBe("prioritized");
    expect(await runtime.ops.queue.isPaused()).toBe(false);
    expect(await runtime.ops.queue.count()).toBe(1);
  });

  it("shows shipbot's queue to a person who logs in", async () => {
    const profile = await mkdtemp(join(tmpdir(), "shipbot-chromium-"));
    dirs.push(profile);
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      httpCredentials: { username, password },
      viewport: { width: 1280, height: 800 },
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const response = await page.goto(`${base}/`);
      expect(response?.status()).toBe(200);
      await page.getByText(displayName).first().waitFor({ timeout: 15_000 });
      const shot = join(tmpdir(), `shipbot-dashboard-${process.pid}-${Date.now()}.png`);
      dirs.push(shot);
      await page.screenshot({ path: shot, fullPage: true });
      const png = await readFile(shot);
      expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(
        true,
      );
      expect(png.length).toBeGreaterThan(5_000);
      expect(await page.textContent("body")).toContain(displayName);
    } finally {
      await context.close();
    }
  });
});
