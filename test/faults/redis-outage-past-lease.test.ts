/**
 * Promise: no operation is applied twice, and no accepted command is lost, when Redis is down for longer
 * than the job's lock and the target's lease (`lockDurationMs`, `leaseTtlMs`). A real redis-server with an
 * append-only file is stopped (SIGKILL) mid-rollout and started again only after both have run out; the
 * real `shipbot worker` process (jobs and cards) keeps running throughout. Its job loses its lock, is taken
 * up again, and must resume its own rollout (the Deployment carries its job id) instead of patching again.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { renderBlocks } from "../../src/adapters/slack/index.ts";
import type { AuditEntry } from "../../src/audit/audit-log.ts";
import type { Runtime } from "../../src/bin/create-runtime.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";
import type { KubeEmulator } from "../emulators/kubernetes/server.ts";
import { type SlackEmulator, startSlackEmulator } from "../emulators/slack/index.ts";
import { type CliStack, slackEnv, startCliStack } from "../helpers/cli-stack.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { type RedisServer, startRedisServer, waitThroughOutage } from "../helpers/redis-server.ts";
import type { ShipbotProcess } from "../helpers/spawn-shipbot.ts";
import { testConfig } from "../helpers/test-runtime.ts";

const botToken = "xoxb-test-token";
const timeScale = 0.05;
const channel = "C0OUTAGE2";
/** Short, so the outage outlasts both by far within a few seconds. */
const lockDurationMs = 2_000;
const leaseTtlMs = 2_000;

let redis: RedisServer;
let slack: SlackEmulator;
let stack: CliStack;
let emulator: KubeEmulator;
let producer: Runtime;
let worker: ShipbotProcess;

beforeEach(async () => {
  redis = await startRedisServer();
  slack = await startSlackEmulator({ botToken, timeScale, channels: [channel] });
  stack = await startCliStack({
    emulator: {
      deployments: [
        {
          namespace: "staging",
          name: "api",
          image: "ghcr.io/acme/api:v1.0.0",
          previousImages: ["ghcr.io/acme/api:v0.9.0"],
          // Six replicas 1.5 s apart: the rollout outlasts the outage, so the job is retried mid-rollout.
          replicas: 6,
        },
      ],
      stepMs: 1_500,
    },
    redisUrl: redis.url,
    config: testConfig({ lockDurationMs, leaseTtlMs, recheckMs: 300 }),
    env: slackEnv({ apiUrl: `${slack.url}/api/`, botToken, timeScale }),
  });
  ({ emulator, producer } = stack);
});

afterEach(async () => {
  if (!redis.running()) await redis.start();
  await stack?.close();
  await slack?.close();
  await redis?.close();
});

/** Polls `probe` (its errors while Redis is away mean "not yet"); a timeout shows the worker's last words. */
function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 25_000): Promise<T> {
  return waitThroughOutage(what, probe, timeoutMs).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n--- worker:\n${worker?.output().slice(-2_000)}`);
  });
}

async function auditOf(jobId: string): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  await producer.audit.read(0, (page) => {
    for (const e of page) if (e.fields.job === jobId) entries.push(e);
  });
  return entries;
}

async function enqueue(text: string): Promise<string> {
  const reply = await producer.handle({
    ...chatCommand(text, demoUser),
    conversation: { platform: "slack", channel },
  });
  expect(reply.error?.message).toBeUndefined();
  return reply.jobIds[0] as string;
}

const finalState = (jobId: string) => () =>
  producer.status.read(jobId).then((s) => (s && terminalPhases.has(s.phase) ? s : undefined));

/** Waits for the rollout to be under way and not finished (the first write done), then stops Redis past
 * the lock and the lease. */
async function outageMidRollout(jobId: string): Promise<void> {
  // The controller has seen the change (the text shows the new ReplicaSet's counts, not the old one's)
  // and some, not all, replicas are updated.
  await waitFor("the rollout to be under way", async () => {
    const s = await producer.status.read(jobId);
    const updated = s?.progress?.updated ?? 0;
    return s?.phase === "progress" && / updated /.test(s.text) && updated >= 1 && updated <= 2
      ? s
      : undefined;
  });
  expect(emulator.writes("staging", "api")).toBe(1);
  expect(emulator.deployment("staging", "api").metadata.annotations?.["shipbot.dev/job-id"]).toBe(jobId);
  // Longer than the lock and the lease together, so both have run out when Redis is back (a key's expiry
  // is a point in time; it passes while the server is down). SIGKILL: no goodbye; the AOF keeps every
  // acknowledged write.
  await redis.stop("SIGKILL");
  await sleep(lockDurationMs + leaseTtlMs + 1_000);
  await redis.start();
}

/** Every job's card shows its final state; returns the message ts of each. */
async function cardsShowing(states: JobState[]): Promise<string[]> {
  return waitFor("every card to show its final state", async () => {
    const refs: string[] = [];
    for (const s of states) {
      const stored = await producer.redis.get(producer.keys.cardRef(s.jobId));
      const parsed = stored ? (JSON.parse(stored) as { ref: string; seq: number }) : undefined;
      if (!parsed || parsed.seq < s.seq) return undefined;
      refs.push(parsed.ref);
    }
    return refs;
  });
}

/** The job's final entries on the audit ledger: exactly one per job that ended once. */
async function endings(jobId: string): Promise<string[]> {
  const terminal: ReadonlySet<string> = terminalPhases;
  return (await auditOf(jobId)).map((e) => e.type).filter((t) => terminal.has(t.replace(/^job\./, "")));
}

describe("no operation is applied twice: Redis is down longer than the job lock and the lease", () => {
  it("resumes the running deploy after the outage: one patch, one success, one card in its final state", async () => {
    worker = stack.start(["worker"]);
    const jobId = await enqueue("/deploy api staging v2");
    await outageMidRollout(jobId);

    // The job lost its lock and its operation stopped; taken up again, it finds its own job id on the
    // Deployment and follows the rollout to the end without patching again.
    const done = await waitFor("the job to end", finalState(jobId), 40_000);
    expect(`${done.phase}: ${done.text}`).toMatch(
      /^succeeded: Deployed ghcr\.io\/acme\/api:v2 in \d+s \(finished after a worker restart; applied once\)$/,
    );
    const [ref] = await cardsShowing([done]);
    // A short grace period for a second run or a second post to show up (it can only add writes).
    await sleep(1_000);
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
    // One message in the channel, showing the final state.
    const messages = slack.messages(channel);
    expect(messages.map((m) => m.ts)).toEqual([ref]);
    expect(messages[0]?.text).toBe(renderBlocks(renderJobCard(done)).text);
    // Succeeded once: one final entry on the audit ledger, and BullMQ holds the job as completed.
    expect(await endings(jobId)).toEqual(["job.succeeded"]);
    expect(await producer.ops.queue.getJobState(jobId)).toBe("completed");
  });

  // After the outage the target's lease is free: the next job in its line may take it before the stalled
  // deploy is taken up again. The deploy then finds its image live and finishes without writing.
  it("lets the target's next job run after the outage and still applies the deploy once", async () => {
    worker = stack.start(["worker"]);
    const deploy = await enqueue("/deploy api staging v2");
    const scale = await enqueue("/scale api staging 4");
    await outageMidRollout(deploy);

    const states: JobState[] = [];
    for (const id of [deploy, scale]) states.push(await waitFor(`job ${id} to end`, finalState(id), 40_000));
    // Which one runs first after the outage is a race: the deploy resumes its own rollout ("applied
    // once"), or the scale goes first and the deploy then finds v2 live (no suffix). Either way, once.
    expect(`${states[0]?.phase}: ${states[0]?.text}`).toMatch(
      /^succeeded: Deployed ghcr\.io\/acme\/api:v2 in \d+s( \(finished after a worker restart; applied once\))?$/,
    );
    // The scale may also have been taken up in the reconnect and handed out again: it then resumes.
    expect(`${states[1]?.phase}: ${states[1]?.text}`).toMatch(
      /^succeeded: Scaled to 4 replicas in \d+s( \(finished after a worker restart; applied once\))?$/,
    );
    const refs = await cardsShowing(states);
    await sleep(1_000);
    // The deploy's patch once; the scale's claim on the Deployment, then the scale subresource.
    expect(emulator.writes("staging", "api")).toBe(1 + 2);
    const live = emulator.deployment("staging", "api");
    expect(live.spec.template.spec.containers[0].image).toBe("ghcr.io/acme/api:v2");
    expect(live.spec.replicas).toBe(4);
    // One message per job, each showing its final state.
    const messages = slack.messages(channel);
    expect(messages).toHaveLength(2);
    expect(new Set(messages.map((m) => m.ts))).toEqual(new Set(refs));
    for (const [i, s] of states.entries())
      expect(slack.message(channel, refs[i] as string)?.text).toBe(renderBlocks(renderJobCard(s)).text);
    for (const id of [deploy, scale]) expect(await endings(id)).toEqual(["job.succeeded"]);
  });
});
