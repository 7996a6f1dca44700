/**
 * Slack status streaming and slash-command ack latency, against the Slack emulator with its real limits
 * (scaled by timeScale). Prints figures; asserts nothing.
 *
 *   node bench/slack-streaming.ts                 # 200 jobs × 20 progress events over 20 channels
 *   node bench/slack-streaming.ts --full          # 1000 × 20 over 20 channels
 *   SLACK_BENCH_JOBS=50 SLACK_BENCH_PROGRESS=5 SLACK_BENCH_CHANNELS=5 node bench/slack-streaming.ts
 *
 * Other settings: SLACK_BENCH_TIME_SCALE (default 0.05: Slack's one post per second per channel becomes one
 * per 50 ms, and shipbot's pacing is scaled the same way), SLACK_BENCH_ACK_RATE (commands/s, default 200),
 * SLACK_BENCH_ACK_SECONDS (default 5), REDIS_URL (default: a Redis of the benchmark's own).
 */
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { pino } from "pino";
import { createSlackAdapter, type SlackAdapter } from "../src/adapters/slack/index.ts";
import { computeSlackSignature } from "../src/adapters/slack/verify-slack-signature.ts";
import { cleanupPrefix } from "../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../src/bin/create-runtime.ts";
import type { Config } from "../src/core/config.ts";
import { terminalPhases } from "../src/core/model.ts";
import type { ExecutorPort } from "../src/executors/port.ts";
import { createHttpServer } from "../src/http/create-http-server.ts";
import { type SlackEmulator, startSlackEmulator } from "../test/emulators/slack/index.ts";
import { startBenchRedis } from "./redis-server.ts";

export interface SlackBenchOptions {
  /** Concurrent jobs in the streaming run. */
  jobs: number;
  /** Progress events each job emits. */
  progress: number;
  /** Channels the jobs are spread over. */
  channels: number;
  /** Emulator time scale; shipbot's pacing is scaled to match. */
  timeScale: number;
  /** Slash commands per second in the ack run. */
  ackRate: number;
  ackSeconds: number;
  /** Redis to use; a private one is started when omitted. */
  redisUrl?: string;
  /** Give up waiting for final cards after this long (ms). */
  drainTimeoutMs?: number;
}

export interface SlackBenchResults {
  options: SlackBenchOptions;
  streaming: {
    jobs: number;
    finalStatesLost: number;
    rateLimited: number;
    webApiCalls: Record<string, number>;
    /** From a job's end to its card showing the final state, in real ms. */
    finalDelayMs: { p50: number; p99: number; max: number };
    wallMs: number;
  };
  ack: {
    commands: number;
    errors: number;
    latencyMs: { p50: number; p99: number; max: number };
    achievedRate: number;
    /** Acknowledged deploy commands without a job afterwards (must be 0). */
    lost: number;
    /** RSS of this process after the run ÷ after the first sixth, minus one. */
    rssGrowth: number;
  };
}

const log = pino({ level: process.env.LOG_LEVEL ?? "silent" });
const signingSecret = "bench-signing-secret";
const botToken = "xoxb-bench-token";
const sreUser = "U0SRE00001";

function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** `services` services in staging; the SRE user and group may do everything. */
export function benchConfig(prefix: string, services: number): Config {
  const svc: Config["services"] = {};
  for (let i = 0; i < services; i++) {
    svc[`svc-${i}`] = {
      image: `registry.local/acme/svc-${i}`,
      replicas: { min: 0, max: 50 },
      environments: { staging: { namespace: "staging" } },
    };
  }
  return {
    redisPrefix: prefix,
    queue: {
      concurrency: 100,
      leaseTtlMs: 30_000,
      recheckMs: 2_000,
      lockDurationMs: 30_000,
      rolloutTimeoutMs: 60_000,
    },
    environments: { staging: { freezes: [] } },
    services: svc,
    roles: {
      sre: {
        permissions: ["deploy", "rollback", "scale", "read", "cancel"],
        environments: ["*"],
        services: ["*"],
        users: [`slack:${sreUser}`],
        groups: ["slack:S0SRE"],
      },
    },
  };
}

/** A rollout that takes no cluster: `progress` events a few ms apart, then done. */
function progressExecutor(progress: number, stepMs: number): ExecutorPort {
  const result = (image: string) => ({
    summary: "",
    image,
    previousImage: image.replace(/:[^:]*$/, ":v1"),
    revision: 2,
    replicas: progress,
    resumed: false,
  });
  return {
    async deploy(_target, image, ctx) {
      for (let i = 1; i <= progress; i++) {
        await sleep(stepMs);
        ctx.onProgress({
          desired: progress,
          updated: i,
          available: i,
          total: progress,
          message: `${i} of ${progress} updated`,
          done: i === progress,
          observed: true,
        });
      }
      return result(image);
    },
    async rollback() {
      return result("x:1");
    },
    async scale(_t, replicas) {
      return { ...result("x:1"), replicas };
    },
    async status() {
      throw new Error("not used in this benchmark");
    },
    async history() {
      return [];
    },
  };
}

interface Stack {
  slack: SlackEmulator;
  runtime: Runtime;
  adapter: SlackAdapter;
  server?: Server;
  url?: string;
  close(): Promise<void>;
}

async function startStack(
  options: SlackBenchOptions,
  redisUrl: string,
  executor: ExecutorPort,
  roles: { work: boolean; notify: boolean; http: boolean },
): Promise<Stack> {
  const slack = await startSlackEmulator({
    botToken,
    timeScale: options.timeScale,
    users: [{ id: sreUser, name: "sre-1" }],
    usergroups: [{ id: "S0SRE", handle: "sre", users: [sreUser] }],
  });
  const config = benchConfig(`bslack${randomBytes(4).toString("hex")}`, Math.max(options.jobs, 50));
  let runtime: Runtime | undefined;
  const adapter = createSlackAdapter({
    signingSecret,
    botToken,
    apiUrl: `${slack.url}/api/`,
    handle: (c) => (runtime as Runtime).handle(c),
    handleAction: (a) => (runtime as Runtime).handleAction(a),
    log,
    groupIds: ["S0SRE"],
    pace: { postIntervalMs: 1100 * options.timeScale, updateIntervalMs: 1250 * options.timeScale },
  });
  runtime = await createRuntime({
    config,
    redisUrl,
    executor,
    chats: { slack: adapter.chat },
    log,
    accept: true,
    work: roles.work,
    notify: roles.notify,
    concurrency: 100,
  });
  await adapter.start();
  const stack: Stack = {
    slack,
    runtime,
    adapter,
    async close() {
      await adapter.stop();
      if (stack.server) {
        stack.server.closeAllConnections();
        await new Promise((resolve) => stack.server?.close(resolve));
      }
      await runtime?.close();
      const redis = new Redis(redisUrl);
      await cleanupPrefix(redis, config.redisPrefix);
      await redis.quit();
      await slack.close();
    },
  };
  if (roles.http) {
    const server = createHttpServer({
      log,
      ready: async () => ({ ok: true, reasons: [] }),
      routes: adapter.routes,
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    stack.server = server;
    stack.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;
  }
  return stack;
}

async function runStreaming(
  options: SlackBenchOptions,
  redisUrl: string,
): Promise<SlackBenchResults["streaming"]> {
  const stack = await startStack(options, redisUrl, progressExecutor(options.progress, 5), {
    work: true,
    notify: true,
    http: false,
  });
  try {
    const started = performance.now();
    const jobIds: string[] = [];
    await Promise.all(
      Array.from({ length: options.jobs }, async (_, i) => {
        const reply = await stack.runtime.handle({
          id: `bench-${i}-${randomBytes(4).toString("hex")}`,
          user: { id: `slack:${sreUser}`, name: "sre-1", groups: [] },
          conversation: { platform: "slack", channel: `C0BENCH${i % options.channels}` },
          text: `deploy svc-${i} staging v2`,
          receivedAt: Date.now(),
        });
        if (!reply.ok) throw new Error(`command refused: ${reply.card?.title}`);
        jobIds.push(...reply.jobIds);
      }),
    );

    // Poll until every job ended and its card shows the final text (or the deadline passes).
    const deadline = Date.now() + (options.drainTimeoutMs ?? 30 * 60_000);
    const finalText = new Map<string, { text: string; finishedAt: number; channel: string }>();
    for (;;) {
      for (const jobId of jobIds) {
        if (finalText.has(jobId)) continue;
        const state = await stack.runtime.status.read(jobId);
        if (state && terminalPhases.has(state.phase)) {
          finalText.set(jobId, {
            text: state.text,
            finishedAt: state.finishedAt ?? state.updatedAt,
            channel: state.data.conversation.channel,
          });
        }
      }
      const shown = countShown(stack.slack, finalText);
      if ((finalText.size === jobIds.length && shown.size === jobIds.length) || Date.now() > deadline) {
        const delays = [...shown.values()];
        const calls: Record<string, number> = {};
        for (const call of stack.slack.calls()) calls[call.method] = (calls[call.method] ?? 0) + 1;
        return {
          jobs: jobIds.length,
          finalStatesLost: jobIds.length - shown.size,
          rateLimited: stack.slack.rateLimited(),
          webApiCalls: calls,
          finalDelayMs: { p50: quantile(delays, 0.5), p99: quantile(delays, 0.99), max: Math.max(...delays) },
          wallMs: Math.round(performance.now() - started),
        };
      }
      await sleep(200);
    }
  } finally {
    await stack.close();
  }
}

/** Jobs whose card shows their final text, with the delay from the job's end to that edit. */
function countShown(
  slack: SlackEmulator,
  finals: Map<string, { text: string; finishedAt: number; channel: string }>,
): Map<string, number> {
  const shown = new Map<string, number>();
  const byChannel = new Map<string, ReturnType<SlackEmulator["messages"]>>();
  for (const [jobId, final] of finals) {
    let messages = byChannel.get(final.channel);
    if (!messages) {
      messages = slack.messages(final.channel);
      byChannel.set(final.channel, messages);
    }
    const card = messages.find(
      (m) => m.text.includes(final.text) && JSON.stringify(m.blocks).includes(`job ${jobId}`),
    );
    const version = card?.history.find((v) => v.text.includes(final.text));
    if (version) shown.set(jobId, Math.max(0, version.at - final.finishedAt));
  }
  return shown;
}

async function runAck(options: SlackBenchOptions, redisUrl: string): Promise<SlackBenchResults["ack"]> {
  // Accept path only: the measure is the HTTP round trip to the ack, with the post-ack work competing for CPU.
  const stack = await startStack(options, redisUrl, progressExecutor(0, 0), {
    work: false,
    notify: false,
    http: true,
  });
  const url = stack.url as string;
  try {
    const total = Math.round(options.ackRate * options.ackSeconds);
    const gapMs = 1000 / options.ackRate;
    const latencies: number[] = [];
    let errors = 0;
    const started = performance.now();
    const inflight: Array<Promise<void>> = [];
    let rssWarm = process.memoryUsage().rss;
    for (let i = 0; i < total; i++) {
      if (i === Math.floor(total / 6)) rssWarm = process.memoryUsage().rss;
      // Open loop: requests leave on schedule whatever the answers do.
      const due = started + i * gapMs;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const trigger = `${Date.now()}.${i}.${randomBytes(6).toString("hex")}`;
      const body = new URLSearchParams({
        team_id: "T0EMULATED",
        channel_id: `C0ACK${i % 20}`,
        user_id: sreUser,
        user_name: "sre-1",
        command: "/deploy",
        text: `svc-${i % 50} staging v${i}`,
        response_url: "http://127.0.0.1:9/unused",
        trigger_id: trigger,
      }).toString();
      const ts = String(Math.floor(Date.now() / 1000));
      const sent = performance.now();
      inflight.push(
        fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": ts,
            "x-slack-signature": computeSlackSignature(signingSecret, ts, body),
          },
          body,
        }).then(
          async (res) => {
            await res.arrayBuffer();
            latencies.push(performance.now() - sent);
            if (res.status !== 200) errors++;
          },
          () => {
            errors++;
          },
        ),
      );
    }
    await Promise.all(inflight);
    const elapsed = (performance.now() - started) / 1000;
    await stack.adapter.idle();
    // Every acknowledged command is a job (its ledger entry is derived from the job).
    const counts = await stack.runtime.ops.queue.getJobCounts(
      "waiting",
      "prioritized",
      "delayed",
      "active",
      "completed",
      "failed",
    );
    const jobs = Object.values(counts).reduce((a, b) => a + b, 0);
    return {
      commands: total,
      lost: total - errors - jobs,
      rssGrowth: process.memoryUsage().rss / rssWarm - 1,
      errors,
      latencyMs: {
        p50: quantile(latencies, 0.5),
        p99: quantile(latencies, 0.99),
        max: Math.max(...latencies),
      },
      achievedRate: total / elapsed,
    };
  } finally {
    await stack.close();
  }
}

/** Runs both parts and returns the figures; `bench/run.ts` may call this. */
export async function runSlackBench(options: SlackBenchOptions): Promise<SlackBenchResults> {
  const own = options.redisUrl === undefined ? await startBenchRedis() : undefined;
  const redisUrl = options.redisUrl ?? (own?.url as string);
  try {
    const streaming = await runStreaming(options, redisUrl);
    const ack = await runAck(options, redisUrl);
    return { options, streaming, ack };
  } finally {
    await own?.stop();
  }
}

function fromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

export function slackBenchOptionsFrom(argv: string[]): SlackBenchOptions {
  const full = argv.includes("--full");
  const options: SlackBenchOptions = {
    jobs: fromEnv("SLACK_BENCH_JOBS", full ? 1000 : 200),
    progress: fromEnv("SLACK_BENCH_PROGRESS", 20),
    channels: fromEnv("SLACK_BENCH_CHANNELS", 20),
    timeScale: fromEnv("SLACK_BENCH_TIME_SCALE", 0.05),
    ackRate: fromEnv("SLACK_BENCH_ACK_RATE", 200),
    ackSeconds: fromEnv("SLACK_BENCH_ACK_SECONDS", 5),
  };
  if (process.env.REDIS_URL) options.redisUrl = process.env.REDIS_URL;
  return options;
}

function printResults(r: SlackBenchResults): void {
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const scaled = (n: number) => `${ms(n)} (≈ ${ms(n / r.options.timeScale)} at Slack's real limits)`;
  const calls = Object.entries(r.streaming.webApiCalls)
    .map(([m, n]) => `${m} ${n}`)
    .join(", ");
  const rows: Array<[string, string]> = [
    [
      "streaming",
      `${r.options.jobs} jobs × ${r.options.progress} progress events over ${r.options.channels} channels, timeScale ${r.options.timeScale}`,
    ],
    ["final states lost", String(r.streaming.finalStatesLost)],
    ["429s received", String(r.streaming.rateLimited)],
    ["Web API calls", calls],
    ["job end → final card p50", scaled(r.streaming.finalDelayMs.p50)],
    ["job end → final card p99", scaled(r.streaming.finalDelayMs.p99)],
    ["job end → final card max", scaled(r.streaming.finalDelayMs.max)],
    ["streaming wall time", `${(r.streaming.wallMs / 1000).toFixed(1)} s`],
    [
      "slash-command acks",
      `${r.ack.commands} at ${r.ack.achievedRate.toFixed(0)}/s (asked ${r.options.ackRate}/s), ${r.ack.errors} errors`,
    ],
    ["ack latency p50", ms(r.ack.latencyMs.p50)],
    ["ack latency p99", ms(r.ack.latencyMs.p99)],
    ["ack latency max", ms(r.ack.latencyMs.max)],
    ["acknowledged commands without a job", String(r.ack.lost)],
    ["RSS growth after warm-up", `${(r.ack.rssGrowth * 100).toFixed(1)}%`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\nSlack streaming benchmark\n${"─".repeat(width + 50)}\n`);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}

if (import.meta.main) {
  const options = slackBenchOptionsFrom(process.argv.slice(2));
  runSlackBench(options).then(
    (results) => {
      printResults(results);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(
        `slack bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
