/**
 * A sustained mix through the real HTTP endpoints: the real `shipbot serve` (Slack and Alertmanager
 * endpoints) and `shipbot worker --no-jobs` (deriver, alert processor, notifier; no executor) run as child
 * processes, and this process sends them, open-loop:
 *
 * - signed Slack slash commands: `/deploy svc-N staging …` at HTTP_LOAD_RATE (default 200/s) and
 *   `/deploy svc-M production …` at HTTP_LOAD_APPROVALS/s (default 4), which become approval requests;
 * - signed `block_actions` clicks two seconds later: Approve, Reject (by a second SRE) or Cancel on each
 *   approval request, Cancel and Roll back on some staging jobs, a tenth of them double-clicked;
 * - Alertmanager webhook posts at HTTP_LOAD_ALERTS/s (default 5): groups that fire, grow, resolve, and are
 *   resent in between, so most alerts in most posts are repeats that must be dropped.
 *
 * It samples each child's RSS (/proc/<pid>/status VmRSS) and heap (bench/memory-probe.ts, loaded with
 * --import), then checks what shipbot did: every acknowledged slash command has its job (BullMQ job or
 * approval request state) and its audit ledger entry; every click got its answer and its decision is on the
 * ledger; every alert reached the ledger once and the repeats were counted as deduplicated. It records the
 * figures in bench/results/latest.json (scenarios "http load …", next to those of bench/run.ts).
 *
 *   node bench/http-load.ts
 *   HTTP_LOAD_RATE=200 HTTP_LOAD_SECONDS=180 node bench/http-load.ts     # a longer run
 *   HTTP_LOAD_SNAPSHOTS=1 node bench/http-load.ts   # heap snapshots of the children at 20 s and at the end
 *   HTTP_LOAD_HEAP_MIB=4288 node bench/http-load.ts # the children's heap limit (default 259, as in a 512 MiB pod)
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
import { stringify } from "yaml";
import { computeSlackSignature } from "../src/adapters/slack/verify-slack-signature.ts";
import { createAlertKeys } from "../src/alerts/alert-keys.ts";
import { cleanupPrefix } from "../src/bin/cleanup-prefix.ts";
import { createJobId, toRollbackCommandId } from "../src/queue/job-id.ts";
import { createKeys } from "../src/queue/keys.ts";
import { startKubeEmulator } from "../test/emulators/kubernetes/server.ts";
import { startSlackEmulator } from "../test/emulators/slack/index.ts";
import { slashCommandBody } from "../test/helpers/slack-requests.ts";
import {
  type AlertPlan,
  alertChannel,
  approvalChannel,
  approver,
  clickBody,
  mixConfig,
  planAlerts,
  readLedger,
  scrapeMetric,
  sreUser,
} from "./load-mix.ts";
import { startBenchRedis } from "./redis-server.ts";

const signingSecret = "bench-signing-secret";
const botToken = "xoxb-bench-token";
const alertToken = `am-${randomBytes(12).toString("hex")}`;
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
const approvalRate = setting("HTTP_LOAD_APPROVALS", 4);
const alertRate = setting("HTTP_LOAD_ALERTS", 5);
const seconds = setting("HTTP_LOAD_SECONDS", 60);
const snapshots = process.env.HTTP_LOAD_SNAPSHOTS === "1";
/**
 * The children's V8 heap limit, MiB: by default the one Node 24 gives itself in a container limited to
 * 512 MiB, as manifests/ limit shipbot's pods (Node sizes its heap from the cgroup's limit: 259 MiB). On a
 * machine with no limit Node takes a quarter of its memory and postpones full collections accordingly,
 * which is RSS growth no pod would show; HTTP_LOAD_HEAP_MIB=4288 gives this 24 GiB machine's default.
 */
const heapMib = setting("HTTP_LOAD_HEAP_MIB", 259);
/** Warm-up: the first sixth of the run (10 s of 60), as the in-process measure used. */
const warmMs = (seconds * 1000) / 6;
/** A click follows its card by this much (the card must exist: the command's work runs after its ack). */
const clickDelayMs = 2_000;
const stagingServices = 50;
/** Answers go to Slack's Web API (the emulator); the response_url is only a fallback, never reached here. */
const unusedUrl = "http://127.0.0.1:9";
const channels = 20;

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
const pct = (n: number): string => `${n >= 0 ? "+" : ""}${round1(n * 100)}%`;

interface Child {
  name: string;
  child: ChildProcess;
  pid: number;
  url: string;
  memoryFile: string;
  exited: Promise<number | null>;
  rss: Array<{ at: number; mib: number }>;
}

type Kind =
  | "slash staging"
  | "slash approval request"
  | "click approve"
  | "click reject"
  | "click cancel request"
  | "click cancel job"
  | "click rollback"
  | "alert";
const kinds: Kind[] = [
  "slash staging",
  "slash approval request",
  "click approve",
  "click reject",
  "click cancel request",
  "click cancel job",
  "click rollback",
  "alert",
];

/** The rollback job a Roll back click on a staging deploy would make (the id every platform shares). */
function rollbackJobOf(e: Planned): string {
  return createJobId("slack", toRollbackCommandId(e.service ?? "", "staging", e.jobId ?? "", []), 0);
}

interface Planned {
  at: number;
  kind: Kind;
  path: string;
  body: string;
  headers: Record<string, string>;
  /** The job a slash command makes, or the job a click is on. */
  jobId?: string;
  /** A click that repeats an earlier one (a double click). */
  repeat?: boolean;
  /** The service of the job a Roll back click is on. */
  service?: string;
  accepted?: boolean;
}

function slackHeaders(body: string): Record<string, string> {
  const ts = String(Math.floor(Date.now() / 1000));
  return {
    "content-type": "application/x-www-form-urlencoded",
    "x-slack-request-timestamp": ts,
    "x-slack-signature": computeSlackSignature(signingSecret, ts, body),
  };
}

/** Everything the run sends, in time order. Job ids derive from trigger ids, as shipbot derives them. */
function plan(alerts: AlertPlan): Planned[] {
  const out: Planned[] = [];
  const runMs = seconds * 1000;
  const trigger = (n: number): string => `${Date.now()}.${n}.${randomBytes(6).toString("hex")}`;
  let n = 0;
  const click = (
    at: number,
    kind: Kind,
    action: "approve" | "reject" | "cancel" | "rollback",
    user: { id: string; name: string },
    channel: string,
    jobId: string,
    repeat: boolean,
    service?: string,
  ): void => {
    const body = clickBody({
      user,
      channel,
      messageTs: `1700000000.${String(n).padStart(6, "0")}`,
      action,
      value: jobId,
      trigger: trigger(n++),
    });
    out.push({
      at,
      kind,
      path: "/slack/events",
      body,
      headers: {},
      jobId,
      repeat,
      ...(service ? { service } : {}),
    });
  };
  const staging = Math.round(rate * seconds);
  for (let i = 0; i < staging; i++) {
    const at = (i / rate) * 1000;
    const id = trigger(n++);
    const channel = `C0ACK${i % channels}`;
    const body = slashCommandBody({
      user: sreUser,
      channel,
      command: "/deploy",
      text: `svc-${i % stagingServices} staging v${i}`,
      responseUrl: unusedUrl,
      trigger: id,
    });
    const jobId = createJobId("slack", id, 0);
    out.push({ at, kind: "slash staging", path: "/slack/events", body, headers: {}, jobId });
    // One in a hundred gets Cancel, one in a hundred Roll back (a tenth of those clicked twice).
    if (at + clickDelayMs >= runMs) continue;
    if (i % 100 === 7) click(at + clickDelayMs, "click cancel job", "cancel", sreUser, channel, jobId, false);
    if (i % 100 === 57) {
      const service = `svc-${i % stagingServices}`;
      click(at + clickDelayMs, "click rollback", "rollback", sreUser, channel, jobId, false, service);
      if (i % 1000 === 57)
        click(at + clickDelayMs + 150, "click rollback", "rollback", sreUser, channel, jobId, true, service);
    }
  }
  const requests = Math.round(approvalRate * seconds);
  for (let r = 0; r < requests; r++) {
    const at = ((r + 0.5) / approvalRate) * 1000;
    const id = trigger(n++);
    const body = slashCommandBody({
      user: sreUser,
      channel: approvalChannel,
      command: "/deploy",
      // A service of its own: a second request for one target would supersede the first.
      text: `svc-${r} production v${r}`,
      responseUrl: unusedUrl,
      trigger: id,
    });
    const jobId = createJobId("slack", id, 0);
    out.push({ at, kind: "slash approval request", path: "/slack/events", body, headers: {}, jobId });
    if (at + clickDelayMs >= runMs) continue;
    const [kind, action, user] =
      r % 4 === 2
        ? (["click reject", "reject", approver] as const)
        : r % 4 === 3
          ? (["click cancel request", "cancel", sreUser] as const)
          : (["click approve", "approve", approver] as const);
    click(at + clickDelayMs, kind, action, user, approvalChannel, jobId, false);
    if (r % 10 === 0) click(at + clickDelayMs + 150, kind, action, user, approvalChannel, jobId, true);
  }
  for (const post of alerts.posts) {
    out.push({
      at: post.at,
      kind: "alert",
      path: "/hooks/alertmanager",
      body: JSON.stringify(post.payload),
      headers: { "content-type": "application/json", authorization: `Bearer ${alertToken}` },
    });
  }
  return out.sort((a, b) => a.at - b.at);
}

async function main(): Promise<void> {
  const redis = await startBenchRedis();
  const slack = await startSlackEmulator({
    botToken,
    rateLimits: false,
    users: [sreUser, approver],
    usergroups: [{ id: "S0SRE", handle: "sre", users: [sreUser.id, approver.id] }],
  });
  const kube = await startKubeEmulator();
  const dir = await mkdtemp(join(tmpdir(), "shipbot-http-load-"));
  const runId = randomBytes(4).toString("hex");
  const requests = Math.round(approvalRate * seconds);
  const config = mixConfig(`bload${runId}`, stagingServices, requests);
  const keys = createKeys(config.redisPrefix);
  const configPath = join(dir, "shipbot.yaml");
  await writeFile(configPath, stringify(config));
  const kubeconfig = await kube.writeKubeconfig(join(dir, "kubeconfig"));
  const nodeArgs = [
    `--max-heap-size=${heapMib}`,
    "--import",
    probe,
    ...(snapshots ? ["--heapsnapshot-signal=SIGUSR2"] : []),
  ];

  async function start(name: string, args: string[]): Promise<Child> {
    const port = await freePort();
    const memoryFile = join(dir, `memory-${name}.jsonl`);
    const child = spawn(process.execPath, [...nodeArgs, shipbotBin, ...args], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        SHIPBOT_CONFIG: configPath,
        KUBECONFIG: kubeconfig,
        REDIS_URL: redis.url,
        PORT: String(port),
        HOST: "127.0.0.1",
        LOG_LEVEL: "warn",
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: signingSecret,
        SLACK_API_URL: `${slack.url}/api/`,
        SHIPBOT_ALERTMANAGER_TOKEN: alertToken,
        SHIPBOT_BENCH_MEMORY_FILE: memoryFile,
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    return {
      name,
      child,
      pid: child.pid as number,
      url: `http://127.0.0.1:${port}`,
      memoryFile,
      exited,
      rss: [],
    };
  }
  const serve = await start("serve", ["serve"]);
  const worker = await start("worker", ["worker", "--no-jobs"]);
  const children = [serve, worker];
  const reader = new Redis(redis.url);
  try {
    for (const c of children) {
      for (let i = 0; ; i++) {
        const ok = await fetch(`${c.url}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        if (i > 300) throw new Error(`shipbot ${c.name} did not start`);
        await sleep(100);
      }
    }

    const alertPlan = planAlerts(runId, alertRate, seconds, 6);
    const events = plan(alertPlan);
    const selfRss: Array<{ at: number; mib: number }> = [];
    const started = performance.now();
    const sampler = setInterval(() => {
      const at = performance.now() - started;
      selfRss.push({ at, mib: mib(process.memoryUsage().rss) });
      for (const c of children)
        rssMiB(c.pid).then(
          (value) => c.rss.push({ at, mib: value }),
          () => undefined,
        );
    }, 1000);
    let snapshotTaken = false;

    const latencies = new Map<Kind, number[]>(kinds.map((k) => [k, []]));
    const errors = new Map<Kind, number>(kinds.map((k) => [k, 0]));
    const statuses = new Map<string, number>();
    const inflight = new Set<Promise<void>>();
    for (const event of events) {
      const wait = started + event.at - performance.now();
      if (wait > 1) await sleep(wait);
      if (snapshots && !snapshotTaken && performance.now() - started > 20_000) {
        snapshotTaken = true;
        for (const c of children) c.child.kill("SIGUSR2");
      }
      const headers = event.path === "/slack/events" ? slackHeaders(event.body) : event.headers;
      const sent = performance.now();
      const request: Promise<void> = fetch(`${serve.url}${event.path}`, {
        method: "POST",
        headers,
        body: event.body,
      })
        .then(async (res) => {
          await res.arrayBuffer();
          latencies.get(event.kind)?.push(performance.now() - sent);
          if (res.status === 200) event.accepted = true;
          else {
            errors.set(event.kind, (errors.get(event.kind) ?? 0) + 1);
            const key = `${event.kind} ${res.status}`;
            statuses.set(key, (statuses.get(key) ?? 0) + 1);
          }
        })
        .catch((error: unknown) => {
          errors.set(event.kind, (errors.get(event.kind) ?? 0) + 1);
          const key = `${event.kind} ${error instanceof Error ? error.message : String(error)}`;
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
        })
        .finally(() => inflight.delete(request));
      inflight.add(request);
    }
    await Promise.all(inflight);
    const elapsed = (performance.now() - started) / 1000;
    // Let the acknowledged work finish (answers, enqueues, the deriver and the alert processor catching
    // up), then one more sample of settled processes.
    const expectedJobs = events.filter((e) => e.kind.startsWith("slash") && e.accepted).length;
    const { inbox } = createAlertKeys(keys);
    const settleStarted = performance.now();
    for (;;) {
      const ledgerJobs = await readLedger(reader, keys.audit).then((l) => l.jobs.size);
      const waitingAlerts = await reader.xlen(inbox);
      if ((ledgerJobs >= expectedJobs && waitingAlerts === 0) || performance.now() - settleStarted > 60_000)
        break;
      await sleep(1_000);
    }
    const settleSeconds = (performance.now() - settleStarted) / 1000;
    await sleep(2_000);
    clearInterval(sampler);
    const endRss = new Map<string, number>();
    for (const c of children) endRss.set(c.name, await rssMiB(c.pid));
    if (snapshots) {
      for (const c of children) c.child.kill("SIGUSR2");
      await sleep(10_000);
    }

    // ---- what shipbot did with it ------------------------------------------------------------------
    const ledger = await readLedger(reader, keys.audit);
    const stateOf = async (jobId: string) => {
      const [phase, text] = await reader.hmget(keys.job(jobId), "phase", "text");
      const bull = await reader.exists(keys.bullJob(jobId));
      return { phase: phase ?? undefined, text: text ?? "", bull: bull === 1 };
    };
    const clickedJobs = new Map<string, Kind>();
    for (const e of events) if (e.kind.startsWith("click") && e.jobId) clickedJobs.set(e.jobId, e.kind);

    const missingJob: string[] = [];
    const missingLedger: string[] = [];
    const perKind = new Map<Kind, { sent: number; accepted: number; withJob: number; withLedger: number }>();
    const tally = (kind: Kind) => {
      let t = perKind.get(kind);
      if (!t) {
        t = { sent: 0, accepted: 0, withJob: 0, withLedger: 0 };
        perKind.set(kind, t);
      }
      return t;
    };
    for (const e of events.filter((x) => x.kind.startsWith("slash"))) {
      const t = tally(e.kind);
      t.sent++;
      if (!e.accepted || !e.jobId) continue;
      t.accepted++;
      const s = await stateOf(e.jobId);
      // A staging job is a BullMQ job, unless a click cancelled it; a production request is its state.
      const hasJob =
        e.kind === "slash staging"
          ? s.bull || (s.phase === "cancelled" && clickedJobs.get(e.jobId) === "click cancel job")
          : s.phase !== undefined;
      if (hasJob) t.withJob++;
      else missingJob.push(`${e.kind} ${e.jobId} (phase ${s.phase ?? "none"})`);
      if ((ledger.jobs.get(e.jobId)?.length ?? 0) > 0) t.withLedger++;
      else missingLedger.push(`${e.kind} ${e.jobId}`);
    }

    // Clicks: answered (an ephemeral answer per Approve/Reject/Cancel; Roll back answers with a job and its
    // card) and decided (the state and the ledger show the decision).
    const clicks = events.filter((e) => e.kind.startsWith("click"));
    const decided = new Map<Kind, { clicks: number; repeats: number; recorded: number; wrong: string[] }>();
    const seenClick = new Set<string>();
    for (const e of clicks) {
      const jobId = e.jobId as string;
      let d = decided.get(e.kind);
      if (!d) {
        d = { clicks: 0, repeats: 0, recorded: 0, wrong: [] };
        decided.set(e.kind, d);
      }
      d.clicks++;
      if (e.repeat) d.repeats++;
      const key = `${e.kind} ${jobId}`;
      if (seenClick.has(key)) continue;
      seenClick.add(key);
      const s = await stateOf(jobId);
      const types = ledger.jobs.get(jobId) ?? [];
      let ok = false;
      if (e.kind === "click approve")
        ok = s.bull && types.includes("job.approved") && types.includes("job.queued");
      else if (e.kind === "click reject")
        ok = s.phase === "cancelled" && s.text.startsWith("Rejected by") && types.includes("job.cancelled");
      else if (e.kind === "click cancel request" || e.kind === "click cancel job")
        ok =
          s.phase === "cancelled" &&
          types.includes("job.cancelled") &&
          (ledger.commands.get(`button-cancel-${jobId}`) ?? []).includes("command.answered") &&
          (e.kind === "click cancel request" || !s.bull);
      else if (e.kind === "click rollback") {
        // No job runs in this load (`worker --no-jobs`), and Roll back acts only on a deploy that succeeded
        // and is still its target's newest change: every click is refused, answered, and queues nothing.
        ok = !(await stateOf(rollbackJobOf(e))).bull;
      }
      if (ok) d.recorded++;
      else
        d.wrong.push(
          `${jobId} (phase ${s.phase ?? "none"}: ${s.text.slice(0, 60)}; ledger ${types.join(",")})`,
        );
    }
    // Every click is answered: Approve/Reject/Cancel with their outcome, Roll back with its refusal.
    const answersExpected = clicks.length;
    const ephemerals = slack.ephemerals();
    const answers = ephemerals.filter((m) => m.channel === approvalChannel || m.channel.startsWith("C0ACK"));
    const answerTexts = new Map<string, number>();
    for (const m of answers) {
      const head = m.text
        .replace(/j[0-9a-z]{12}/g, "<job>")
        .replace(/sre-\d/g, "<user>")
        .slice(0, 60);
      answerTexts.set(head, (answerTexts.get(head) ?? 0) + 1);
    }
    const rollbackJobs = new Set(clicks.filter((e) => e.kind === "click rollback").map(rollbackJobOf));
    let rollbackBull = 0;
    for (const id of rollbackJobs) if ((await stateOf(id)).bull) rollbackBull++;

    const alertsAccepted = events.filter((e) => e.kind === "alert" && e.accepted).length;
    const alertLedger = (ledger.types.get("alert.firing") ?? 0) + (ledger.types.get("alert.resolved") ?? 0);
    const deduplicated = await scrapeMetric(`${worker.url}/metrics`, "shipbot_alerts_deduplicated_total");
    const received = await scrapeMetric(`${serve.url}/metrics`, "shipbot_alerts_received_total");
    const inboxLeft = await reader.xlen(inbox);
    const alertCards = slack.messages(alertChannel).filter((m) => m.thread_ts === undefined).length;

    // ---- memory ------------------------------------------------------------------------------------
    const loadStartAt = Date.now() - (performance.now() - started);
    const memory = new Map<
      string,
      {
        warm: number;
        end: number;
        peak: number;
        growth: number;
        heapWarm: number;
        heapEnd: number;
        heapGrowth: number;
        rssTimeline: string;
        heapTimeline: string;
      }
    >();
    for (const c of children) {
      const warm = c.rss.find((s) => s.at >= warmMs)?.mib ?? Number.NaN;
      const end = endRss.get(c.name) ?? Number.NaN;
      const heaps = await heapSamples(c.memoryFile);
      const warmHeap = heaps.find((h) => h.at >= loadStartAt + warmMs);
      const endHeap = heaps.at(-1);
      memory.set(c.name, {
        warm: round1(warm),
        end: round1(end),
        peak: round1(Math.max(...c.rss.map((s) => s.mib))),
        growth: end / warm - 1,
        heapWarm: round1(mib(warmHeap?.heapUsed ?? Number.NaN)),
        heapEnd: round1(mib(endHeap?.heapUsed ?? Number.NaN)),
        heapGrowth: warmHeap && endHeap ? endHeap.heapUsed / warmHeap.heapUsed - 1 : Number.NaN,
        rssTimeline: c.rss
          .filter((_, i) => i % 5 === 0)
          .map((s) => `${Math.round(s.at / 1000)}s ${round1(s.mib)}`)
          .join(", "),
        heapTimeline: heaps
          .filter((h) => h.at >= loadStartAt)
          .filter((_, i) => i % 5 === 0)
          .map((h) => `${Math.round((h.at - loadStartAt) / 1000)}s ${round1(mib(h.heapUsed))}`)
          .join(", "),
      });
    }
    const selfWarm = selfRss.find((s) => s.at >= warmMs)?.mib ?? Number.NaN;
    const selfEnd = selfRss.at(-1)?.mib ?? Number.NaN;

    const slashSent = events.filter((e) => e.kind.startsWith("slash")).length;
    const totalErrors = [...errors.values()].reduce((a, b) => a + b, 0);
    const lost = new Set([...missingJob, ...missingLedger].map((m) => m.split(" ").at(-1))).size;
    const latencyOf = (group: (k: Kind) => boolean) =>
      kinds.filter(group).flatMap((k) => latencies.get(k) ?? []);
    const slashLat = latencyOf((k) => k.startsWith("slash"));
    const clickLat = latencyOf((k) => k.startsWith("click"));
    const alertLat = latencyOf((k) => k === "alert");
    const figures = {
      seconds,
      elapsed: round1(elapsed),
      settleSeconds: round1(settleSeconds),
      offered: {
        slashPerSecond: round1(slashSent / elapsed),
        clicks: clicks.length,
        alertPosts: alertPlan.posts.length,
      },
      sent: Object.fromEntries(kinds.map((k) => [k, events.filter((e) => e.kind === k).length])),
      httpErrors: Object.fromEntries(errors),
      httpErrorDetail: Object.fromEntries(statuses),
      ackMs: Object.fromEntries(
        kinds.map((k) => {
          const l = latencies.get(k) ?? [];
          return [
            k,
            { p50: round1(quantile(l, 0.5)), p99: round1(quantile(l, 0.99)), max: round1(Math.max(...l)) },
          ];
        }),
      ),
      commands: Object.fromEntries(perKind),
      lost,
      missingJob: missingJob.slice(0, 10),
      missingLedger: missingLedger.slice(0, 10),
      clicks: Object.fromEntries(
        [...decided].map(([k, d]) => [k, { ...d, wrong: d.wrong.length, wrongSample: d.wrong.slice(0, 3) }]),
      ),
      clickAnswers: {
        expected: answersExpected,
        received: answers.length,
        texts: Object.fromEntries(answerTexts),
      },
      rollbackJobs: { distinct: rollbackJobs.size, inQueue: rollbackBull },
      approvalDenied: ledger.types.get("approval.denied") ?? 0,
      alerts: {
        posts: alertPlan.posts.length,
        accepted: alertsAccepted,
        alerts: alertPlan.alerts,
        groups: alertPlan.groups,
        receivedMetric: received,
        repeatsExpected: alertPlan.repeats,
        deduplicatedMetric: deduplicated,
        ledgerExpected: alertPlan.ledgerEntries,
        ledger: alertLedger,
        inboxLeft,
        cardsPosted: alertCards,
      },
      ledger: { entries: ledger.entries, types: Object.fromEntries(ledger.types) },
      memory: Object.fromEntries(
        [...memory].map(([k, m]) => [k, { ...m, growth: pct(m.growth), heapGrowth: pct(m.heapGrowth) }]),
      ),
      loadClientRssMiB: { warm: round1(selfWarm), end: round1(selfEnd) },
    };
    process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    if (snapshots) {
      const files = (await readdir(dir)).filter((f) => f.endsWith(".heapsnapshot"));
      process.stdout.write(`heap snapshots in ${dir}: ${files.join(", ")}\n`);
    }

    const label = `${seconds} s of ${rate}/s /deploy staging + ${approvalRate}/s /deploy production (approval requests), ${clicks.length} clicks, ${alertPlan.posts.length} Alertmanager posts, to \`shipbot serve\` + \`shipbot worker --no-jobs\` (child processes; the load client is the bench process)`;
    const recorded = [...decided.values()].reduce((a, d) => a + d.recorded, 0);
    const distinctClicks = [...decided.values()].reduce((a, d) => a + d.clicks - d.repeats, 0);
    const what: Record<string, [string, string]> = {
      serve: ["server", "`serve`"],
      worker: ["worker", "`worker --no-jobs` (deriver, alert processor, notifier at Slack's pace)"],
    };
    await recordResults([
      ...[...memory].map(([name, m]) => ({
        scenario: `http load: ${what[name]?.[0] ?? name} RSS growth`,
        unit: "RSS growth after warm-up (%)",
        shipbot: round1(m.growth * 100),
        baseline: 10,
        ratio: m.growth < 0.1 ? 1 : 0.1 / m.growth,
        notes: `${label}; ${what[name]?.[1] ?? name} RSS ${m.warm} MiB after the first sixth → ${m.end} MiB at the end (peak ${m.peak}); heapUsed ${m.heapWarm} → ${m.heapEnd} MiB (${pct(m.heapGrowth)}); load client RSS ${round1(selfWarm)} → ${round1(selfEnd)} MiB; goal: growth < 10% (baseline column)`,
      })),
      {
        scenario: "http load: ack latency p99",
        unit: "ms (lower is better)",
        shipbot: round1(quantile(slashLat, 0.99)),
        baseline: 3000,
        ratio: 3000 / quantile(slashLat, 0.99),
        notes: `${label}; slash commands: p50 ${round1(quantile(slashLat, 0.5))} ms, achieved ${figures.offered.slashPerSecond}/s; baseline: Slack's 3 s ack deadline`,
      },
      {
        scenario: "http load: click ack latency p99",
        unit: "ms (lower is better)",
        shipbot: round1(quantile(clickLat, 0.99)),
        baseline: 3000,
        ratio: 3000 / quantile(clickLat, 0.99),
        notes: `${label}; block_actions clicks: p50 ${round1(quantile(clickLat, 0.5))} ms; baseline: Slack's 3 s ack deadline`,
      },
      {
        scenario: "http load: alert ack latency p99",
        unit: "ms (lower is better)",
        shipbot: round1(quantile(alertLat, 0.99)),
        baseline: 10000,
        ratio: 10000 / quantile(alertLat, 0.99),
        notes: `${label}; Alertmanager webhook posts: p50 ${round1(quantile(alertLat, 0.5))} ms; baseline: Alertmanager's default webhook timeout (10 s)`,
      },
      {
        scenario: "http load: errors and lost commands",
        unit: "count (0 is the goal)",
        shipbot: totalErrors + lost,
        baseline: 0,
        ratio: totalErrors + lost === 0 ? 1 : 0,
        notes: `${label}; HTTP errors ${totalErrors}; ${expectedJobs} slash commands acknowledged, ${lost} without their job or ledger entry; clicks decided as sent ${recorded} of ${distinctClicks} (plus ${clicks.length - distinctClicks} double clicks), ${answers.length} answers for ${answersExpected} clicks`,
      },
      {
        scenario: "http load: alerts deduplicated",
        unit: "alerts dropped as repeats",
        shipbot: deduplicated ?? Number.NaN,
        baseline: alertPlan.repeats,
        ratio: (deduplicated ?? 0) / alertPlan.repeats,
        notes: `${label}; ${alertsAccepted} posts accepted carrying ${alertPlan.alerts} alerts in ${alertPlan.groups} groups; shipbot_alerts_deduplicated_total ${deduplicated} vs ${alertPlan.repeats} repeats sent (baseline); ledger ${alertLedger} alert entries vs ${alertPlan.ledgerEntries} expected`,
      },
    ]);
  } finally {
    for (const c of children) c.child.kill("SIGTERM");
    await Promise.race([Promise.all(children.map((c) => c.exited)), sleep(10_000)]);
    for (const c of children) if (c.child.exitCode === null) c.child.kill("SIGKILL");
    await cleanupPrefix(reader, config.redisPrefix);
    await reader.quit();
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
