/**
 * /metrics after real queue activity: a producer runtime and a worker runtime on real Redis, a no-op
 * executor that holds one rollout until the test lets it go, and the exposition checked by promtool.
 */
import { spawnSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { commandRegistry } from "../../commands/index.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import { createCard } from "../../src/core/card.ts";
import type { Config } from "../../src/core/config.ts";
import { terminalPhases } from "../../src/core/model.ts";
import type { ExecutionResult, ExecutorPort, TargetStatus } from "../../src/executors/port.ts";
import { createMetricsRoute } from "../../src/http/create-metrics-route.ts";
import type { ChatPort } from "../../src/notify/chat-port.ts";
import { collectQueueMetrics, toQueueTargets } from "../../src/observability/collect-queue-metrics.ts";
import {
  createMetrics,
  instrumentChatPorts,
  type Metrics,
  observeOpWorker,
} from "../../src/observability/metrics.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { createRecordingChat, quietLog, redisUrl, testConfig } from "../helpers/test-runtime.ts";

/** Returns at once, except a deploy of `api`, which waits for `release()`. */
function createNoopExecutor() {
  let release = (): void => undefined;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const result = (image: string, replicas = 2): ExecutionResult => ({
    summary: "done",
    image,
    previousImage: "img:v1",
    revision: 2,
    replicas,
    resumed: false,
  });
  const executor: ExecutorPort = {
    async deploy(target, image) {
      if (target.deployment === "api") await held;
      return result(image);
    },
    async rollback() {
      return result("img:v1");
    },
    async scale(_target, replicas) {
      return result("img:v1", replicas);
    },
    async status(): Promise<TargetStatus> {
      const rollout = {
        desired: 2,
        updated: 2,
        available: 2,
        total: 2,
        message: "",
        done: true,
        observed: true,
      };
      return {
        image: "img:v1",
        revision: 1,
        desired: 2,
        updated: 2,
        available: 2,
        rollout,
        lastJobId: undefined,
      };
    },
    async history() {
      return [];
    },
  };
  return { executor, release: () => release() };
}

let config: Config;
let metrics: Metrics;
let producer: Runtime;
let worker: Runtime | undefined;
let server: Server;
let metricsUrl: string;

beforeEach(async () => {
  config = testConfig();
  metrics = createMetrics({ commandNames: commandRegistry.keys() });
  producer = await createRuntime({
    config,
    redisUrl,
    executor: createNoopExecutor().executor,
    chats: {},
    log: quietLog,
    accept: true,
    work: false,
    notify: false,
  });
  collectQueueMetrics({
    registry: metrics.registry,
    queue: producer.ops.queue,
    redis: producer.redis,
    keys: producer.keys,
    targets: toQueueTargets(config),
  });
  const route = createMetricsRoute(metrics.registry);
  server = createServer((req, res) => {
    void route(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  metricsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
});

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await worker?.close();
  worker = undefined;
  await producer?.close();
  const redis = new Redis(redisUrl);
  await cleanupPrefix(redis, config.redisPrefix);
  await redis.quit();
});

async function scrape(): Promise<string> {
  const res = await fetch(metricsUrl);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return res.text();
}

/** The value of one sample, e.g. value(text, 'shipbot_queue_jobs{queue="ops",state="active"}'). */
function value(text: string, sample: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

async function until(what: string, probe: (text: string) => boolean, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = "";
  while (Date.now() < deadline) {
    text = await scrape();
    if (probe(text)) return text;
    await sleep(50);
  }
  throw new Error(
    `timed out waiting for ${what}; last scrape:\n${text
      .split("\n")
      .filter((l) => l.startsWith("shipbot_"))
      .join("\n")}`,
  );
}

function promtoolCheck(text: string): void {
  const run = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  if (run.error && (run.error as NodeJS.ErrnoException).code === "ENOENT") {
    throw new Error(
      "promtool is not installed: run scripts/install-test-tools.sh (Debian package prometheus)",
    );
  }
  expect(`${run.stdout}${run.stderr}`.trim()).toBe("");
  expect(run.status).toBe(0);
}

const jobs = (state: string) => `shipbot_queue_jobs{queue="ops",state="${state}"}`;

describe("/metrics", () => {
  it("reports queue depth, lines, wait and run times after real queue activity, and passes promtool", async () => {
    const idle = await scrape();
    expect(value(idle, "shipbot_redis_up")).toBe(1);
    expect(value(idle, jobs("prioritized"))).toBe(0);
    expect(value(idle, 'shipbot_queue_oldest_waiting_seconds{queue="ops"}')).toBe(0);

    // No worker yet: three operations wait, ready to run.
    const texts = ["/deploy api staging v2", "/deploy web staging v2", "/scale api staging 4"];
    const jobIds: string[] = [];
    for (const text of texts) {
      const reply = await producer.handle(chatCommand(text, demoUser));
      expect(reply.error?.message).toBeUndefined();
      jobIds.push(reply.jobIds[0] as string);
    }
    await sleep(300);
    const waiting = await scrape();
    expect(value(waiting, jobs("prioritized"))).toBe(3);
    expect(value(waiting, jobs("active"))).toBe(0);
    const age = value(waiting, 'shipbot_queue_oldest_waiting_seconds{queue="ops"}') ?? 0;
    expect(age).toBeGreaterThanOrEqual(0.3);
    expect(age).toBeLessThan(30);
    promtoolCheck(waiting);

    // A worker starts: api's deploy is held, so the scale of api waits in api/staging's line.
    const { executor, release } = createNoopExecutor();
    const chat = createRecordingChat();
    worker = await createRuntime({
      config,
      redisUrl,
      executor,
      chats: instrumentChatPorts({ shell: chat }, metrics),
      log: quietLog,
      accept: false,
      work: true,
      notify: true,
    });
    for (const w of worker.workers) observeOpWorker(w, metrics);
    const busy = await until(
      "api's deploy to run and its scale to wait in line",
      (t) =>
        value(t, jobs("active")) === 1 &&
        value(t, 'shipbot_target_line_jobs{service="api",env="staging"}') === 1 &&
        value(t, jobs("completed")) === 1,
    );
    expect(value(busy, jobs("prioritized"))).toBe(0);
    expect(value(busy, jobs("delayed"))).toBe(1);
    expect(value(busy, 'shipbot_target_line_jobs{service="web",env="staging"}')).toBe(0);

    // Held for a known minimum, which its run time must show.
    await sleep(100);
    release();
    const done = await until(
      "every job to finish and every card to be rendered",
      (t) => value(t, jobs("completed")) === 3 && value(t, "shipbot_cards_pending") === 0,
    );
    for (const id of jobIds) {
      const deadline = Date.now() + 10_000;
      let phase = (await producer.status.read(id))?.phase;
      while (!(phase && terminalPhases.has(phase)) && Date.now() < deadline) {
        await sleep(25);
        phase = (await producer.status.read(id))?.phase;
      }
      expect(phase).toBe("succeeded");
    }
    expect(value(done, jobs("active"))).toBe(0);
    expect(value(done, jobs("delayed"))).toBe(0);
    expect(value(done, 'shipbot_target_line_jobs{service="api",env="staging"}')).toBe(0);
    expect(value(done, 'shipbot_queue_oldest_waiting_seconds{queue="ops"}')).toBe(0);
    expect(value(done, 'shipbot_job_duration_seconds_count{kind="deploy",outcome="succeeded"}')).toBe(2);
    expect(value(done, 'shipbot_job_duration_seconds_count{kind="scale",outcome="succeeded"}')).toBe(1);
    expect(value(done, 'shipbot_job_wait_seconds_count{kind="scale"}')).toBe(1);
    // The held deploy ran at least as long as the test held it (a lower bound, whatever the load).
    expect(
      value(done, 'shipbot_job_duration_seconds_sum{kind="deploy",outcome="succeeded"}') ?? 0,
    ).toBeGreaterThanOrEqual(0.1);
    expect(
      value(done, 'shipbot_job_duration_seconds_bucket{le="+Inf",kind="deploy",outcome="succeeded"}'),
    ).toBe(2);
    // Each job's card was posted once, then edited.
    expect(value(done, 'shipbot_chat_api_calls_total{platform="shell",operation="post",outcome="ok"}')).toBe(
      3,
    );
    // Every transition is in the audit stream by now; the gauge shows the stream's length.
    const audited = await producer.redis.xlen(producer.keys.audit);
    expect(audited).toBeGreaterThanOrEqual(6);
    expect(value(await scrape(), "shipbot_audit_stream_entries")).toBe(audited);
    expect(value(done, 'shipbot_redis_errors_total{connection="producer"}')).toBe(0);
    expect(value(done, "process_cpu_seconds_total") ?? 0).toBeGreaterThan(0);
    promtoolCheck(done);
  });

  it("never makes a label out of what was typed", async () => {
    metrics.countCommand("deploy", "accepted");
    metrics.countCommand("drop-table-users", "refused");
    metrics.countCommand("deploy", "denied");
    const text = await scrape();
    expect(value(text, 'shipbot_commands_total{command="deploy",outcome="accepted"}')).toBe(1);
    expect(value(text, 'shipbot_commands_total{command="unknown",outcome="refused"}')).toBe(1);
    expect(value(text, 'shipbot_permission_denials_total{command="deploy"}')).toBe(1);
    expect(text).not.toContain("drop-table-users");
    promtoolCheck(text);
  });

  it("counts card posts without losing what posts a card once: the post's token and the lookup", async () => {
    const seen: string[] = [];
    const port: ChatPort = {
      async post(_conversation, _card, token) {
        seen.push(`post ${token}`);
        return "m1";
      },
      async find(_conversation, token, window) {
        seen.push(`find ${token} ${window.from}-${window.to}`);
        return "m1";
      },
      async update() {},
    };
    const counted = instrumentChatPorts({ slack: port }, metrics).slack as ChatPort;
    const conversation = { platform: "slack" as const, channel: "C1" };
    const card = createCard("info", "a card");
    expect(await counted.post(conversation, card, "tok-1")).toBe("m1");
    expect(await counted.find?.(conversation, "tok-1", { from: 1, to: 2 })).toBe("m1");
    expect(seen).toEqual(["post tok-1", "find tok-1 1-2"]);
    expect(
      value(await scrape(), 'shipbot_chat_api_calls_total{platform="slack",operation="post",outcome="ok"}'),
    ).toBe(1);
  });

  it("says Redis is down instead of failing the scrape or showing stale depths", async () => {
    await producer.redis.quit();
    const text = await scrape();
    expect(value(text, "shipbot_redis_up")).toBe(0);
    expect(value(text, jobs("waiting"))).toBeUndefined();
    expect(value(text, "process_cpu_seconds_total") ?? 0).toBeGreaterThan(0);
    promtoolCheck(text);
  });
});
