/**
 * Memory under HTTP load: the real `shipbot serve` runs as a child process, and this process sends it
 * signed Slack slash commands at a steady rate (default 200/s for 60 s), so the load client's own
 * allocations never count against the bot. It samples the child's RSS (/proc/<pid>/status VmRSS) and
 * heap (bench/memory-probe.ts, loaded with --import) and records the growth after warm-up in
 * bench/results/latest.json (scenarios "http load …", next to those of bench/run.ts).
 *
 *   node bench/http-load.ts
 *   HTTP_LOAD_RATE=200 HTTP_LOAD_SECONDS=180 node bench/http-load.ts     # a longer run
 *   HTTP_LOAD_SNAPSHOTS=1 node bench/http-load.ts   # heap snapshots of the child at 20 s and at the end
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { pino } from "pino";
import { stringify } from "yaml";
import { computeSlackSignature } from "../src/adapters/slack/verify-slack-signature.ts";
import { cleanupPrefix } from "../src/bin/cleanup-prefix.ts";
import { createRuntime } from "../src/bin/create-runtime.ts";
import { startKubeEmulator } from "../test/emulators/kubernetes/server.ts";
import { startSlackEmulator } from "../test/emulators/slack/index.ts";
import { noopExecutor } from "./bench-config.ts";
import { startBenchRedis } from "./redis-server.ts";
import { benchConfig } from "./slack-streaming.ts";

const signingSecret = "bench-signing-secret";
const botToken = "xoxb-bench-token";
const sreUser = "U0SRE00001"; // the user benchConfig grants every role
const shipbotBin = new URL("../src/bin/shipbot.ts", import.meta.url).pathname;
const probe = new URL("./memory-probe.ts", import.meta.url).pathname;

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

const rate = setting("HTTP_LOAD_RATE", 200);
const seconds = setting("HTTP_LOAD_SECONDS", 60);
const snapshots = process.env.HTTP_LOAD_SNAPSHOTS === "1";
/** Warm-up: the first sixth of the run (10 s of 60), as the in-process measure used. */
const warmMs = (seconds * 1000) / 6;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resident set of a process in MiB, from the kernel's view of it. */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

interface HeapSample {
  at: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

async function heapSamples(file: string): Promise<HeapSample[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as HeapSample);
}

const quantile = (values: number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};
const mib = (bytes: number): number => bytes / 2 ** 20;
const round1 = (n: number): number => Math.round(n * 10) / 10;

async function main(): Promise<void> {
  const redis = await startBenchRedis();
  const slack = await startSlackEmulator({
    botToken,
    rateLimits: false,
    users: [{ id: sreUser, name: "sre-1" }],
    usergroups: [{ id: "S0SRE", handle: "sre", users: [sreUser] }],
  });
  const kube = await startKubeEmulator();
  const dir = await mkdtemp(join(tmpdir(), "shipbot-http-load-"));
  const config = benchConfig(`bload${randomBytes(4).toString("hex")}`, 50);
  const configPath = join(dir, "shipbot.yaml");
  await writeFile(configPath, stringify(config));
  const port = await freePort();
  const memoryFile = join(dir, "memory.jsonl");
  const nodeArgs = ["--import", probe, ...(snapshots ? ["--heapsnapshot-signal=SIGUSR2"] : [])];
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, shipbotBin, "serve"], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      SHIPBOT_CONFIG: configPath,
      KUBECONFIG: await kube.writeKubeconfig(join(dir, "kubeconfig")),
      REDIS_URL: redis.url,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      SLACK_BOT_TOKEN: botToken,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_API_URL: `${slack.url}/api/`,
      SHIPBOT_BENCH_MEMORY_FILE: memoryFile,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const pid = child.pid as number;
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  // Counts jobs afterwards: every acknowledged deploy must be one.
  const counter = await createRuntime({
    config,
    redisUrl: redis.url,
    executor: noopExecutor(),
    chats: {},
    log: pino({ level: "silent" }),
    accept: true,
    work: false,
    notify: false,
  });
  try {
    for (let i = 0; ; i++) {
      const ok = await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (i > 300) throw new Error("shipbot serve did not start");
      await sleep(100);
    }

    const rss: Array<{ at: number; mib: number }> = [];
    const selfRss: Array<{ at: number; mib: number }> = [];
    const started = performance.now();
    const sampler = setInterval(() => {
      const at = performance.now() - started;
      selfRss.push({ at, mib: mib(process.memoryUsage().rss) });
      rssMiB(pid).then(
        (value) => rss.push({ at, mib: value }),
        () => undefined,
      );
    }, 1000);
    let snapshotTaken = false;

    const total = Math.round(rate * seconds);
    const gapMs = 1000 / rate;
    const latencies: number[] = [];
    let errors = 0;
    const inflight = new Set<Promise<void>>();
    for (let i = 0; i < total; i++) {
      const due = started + i * gapMs;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      if (snapshots && !snapshotTaken && performance.now() - started > 20_000) {
        snapshotTaken = true;
        child.kill("SIGUSR2");
      }
      const body = new URLSearchParams({
        team_id: "T0EMULATED",
        channel_id: `C0ACK${i % 20}`,
        user_id: sreUser,
        user_name: "sre-1",
        command: "/deploy",
        text: `svc-${i % 50} staging v${i}`,
        response_url: "http://127.0.0.1:9/unused",
        trigger_id: `${Date.now()}.${i}.${randomBytes(6).toString("hex")}`,
      }).toString();
      const ts = String(Math.floor(Date.now() / 1000));
      const sent = performance.now();
      const request: Promise<void> = fetch(`${url}/slack/events`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          "x-slack-request-timestamp": ts,
          "x-slack-signature": computeSlackSignature(signingSecret, ts, body),
        },
        body,
      })
        .then(async (res) => {
          await res.arrayBuffer();
          latencies.push(performance.now() - sent);
          if (res.status !== 200) errors++;
        })
        .catch(() => {
          errors++;
        })
        .finally(() => inflight.delete(request));
      inflight.add(request);
    }
    await Promise.all(inflight);
    const elapsed = (performance.now() - started) / 1000;
    // Let the acknowledged commands' enqueues finish, then one more sample of a settled process.
    await sleep(2_000);
    clearInterval(sampler);
    const endRss = await rssMiB(pid);
    if (snapshots) {
      child.kill("SIGUSR2");
      await sleep(10_000);
    }
    const counts = await counter.ops.queue.getJobCounts("waiting", "prioritized", "delayed", "active");
    const jobs = Object.values(counts).reduce((a, b) => a + b, 0);

    const warmRss = rss.find((s) => s.at >= warmMs)?.mib ?? Number.NaN;
    const heaps = await heapSamples(memoryFile);
    // The probe's clock starts when the child starts; the load starts after /healthz answers.
    const loadStartAt = Date.now() - (performance.now() - started);
    const warmHeap = heaps.find((h) => h.at >= loadStartAt + warmMs);
    const endHeap = heaps.at(-1);
    const peakRss = Math.max(...rss.map((s) => s.mib));
    const selfWarm = selfRss.find((s) => s.at >= warmMs)?.mib ?? Number.NaN;
    const selfEnd = selfRss.at(-1)?.mib ?? Number.NaN;
    const growth = endRss / warmRss - 1;
    const heapGrowth = warmHeap && endHeap ? endHeap.heapUsed / warmHeap.heapUsed - 1 : Number.NaN;

    const figures = {
      commands: total,
      achievedRate: round1(total / elapsed),
      errors,
      lost: total - errors - jobs,
      ackP50Ms: round1(quantile(latencies, 0.5)),
      ackP99Ms: round1(quantile(latencies, 0.99)),
      serverRssMiB: { warm: round1(warmRss), end: round1(endRss), peak: round1(peakRss) },
      serverRssGrowthPct: round1(growth * 100),
      serverHeapUsedMiB: {
        warm: round1(mib(warmHeap?.heapUsed ?? Number.NaN)),
        end: round1(mib(endHeap?.heapUsed ?? Number.NaN)),
      },
      serverHeapGrowthPct: round1(heapGrowth * 100),
      loadClientRssMiB: { warm: round1(selfWarm), end: round1(selfEnd) },
      rssTimeline: rss
        .filter((_, i) => i % 5 === 0)
        .map((s) => `${Math.round(s.at / 1000)}s ${round1(s.mib)}`)
        .join(", "),
      heapTimeline: heaps
        .filter((h) => h.at >= loadStartAt)
        .filter((_, i) => i % 5 === 0)
        .map((h) => `${Math.round((h.at - loadStartAt) / 1000)}s ${round1(mib(h.heapUsed))}`)
        .join(", "),
    };
    process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    if (snapshots) {
      const files = (await readdir(dir)).filter((f) => f.endsWith(".heapsnapshot"));
      process.stdout.write(`heap snapshots in ${dir}: ${files.join(", ")}\n`);
    }

    const label = `${total} signed /deploy at ${rate}/s for ${seconds} s to \`shipbot serve\` (a child process; the load client is the bench process)`;
    await recordResults([
      {
        scenario: "http load: server RSS growth",
        unit: "RSS growth after warm-up (%)",
        shipbot: figures.serverRssGrowthPct,
        baseline: 10,
        ratio: growth < 0.1 ? 1 : 0.1 / growth,
        notes: `${label}; RSS of the server ${figures.serverRssMiB.warm} MiB after the first sixth → ${figures.serverRssMiB.end} MiB at the end (peak ${figures.serverRssMiB.peak}); heapUsed ${figures.serverHeapUsedMiB.warm} → ${figures.serverHeapUsedMiB.end} MiB; load client RSS ${figures.loadClientRssMiB.warm} → ${figures.loadClientRssMiB.end} MiB; ${errors} errors, ${figures.lost} acknowledged without a job; goal: growth < 10% (baseline column)`,
      },
      {
        scenario: "http load: ack latency p99",
        unit: "ms (lower is better)",
        shipbot: figures.ackP99Ms,
        baseline: 3000,
        ratio: 3000 / figures.ackP99Ms,
        notes: `${label}; p50 ${figures.ackP50Ms} ms, achieved ${figures.achievedRate}/s; baseline: Slack's 3 s ack deadline`,
      },
    ]);
  } finally {
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(10_000)]);
    if (child.exitCode === null) child.kill("SIGKILL");
    await counter.close();
    const cleanup = new Redis(redis.url);
    await cleanupPrefix(cleanup, config.redisPrefix);
    await cleanup.quit();
    await slack.close();
    await kube.close();
    await redis.stop();
    if (!snapshots) await rm(dir, { recursive: true, force: true });
  }
}

interface Result {
  scenario: string;
  unit: string;
  shipbot: number;
  baseline: number;
  ratio: number;
  notes: string;
}

/** Replaces this script's scenarios in bench/results/latest.json, keeping the others. */
async function recordResults(mine: Result[]): Promise<void> {
  const file = new URL("./results/latest.json", import.meta.url);
  const previous = await readFile(file, "utf8").then(
    (text) => JSON.parse(text) as { machine?: unknown; results?: Result[] },
    () => ({}) as { machine?: unknown; results?: Result[] },
  );
  const names = new Set(mine.map((r) => r.scenario));
  const results = [...(previous.results ?? []).filter((r) => !names.has(r.scenario)), ...mine];
  await writeFile(file, `${JSON.stringify({ ...previous, results }, null, 2)}\n`);
}

await main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `http load bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
