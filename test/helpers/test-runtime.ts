import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Card } from "../../src/core/card.ts";
import type { Config } from "../../src/core/config.ts";
import type { Conversation, JobState } from "../../src/core/model.ts";
import { terminalPhases } from "../../src/core/model.ts";
import type { ExecutorPort } from "../../src/executors/port.ts";
import type { GitHubClient } from "../../src/github/index.ts";
import type { ChatPort, ChatPorts } from "../../src/notify/chat-port.ts";
import type { Tracing } from "../../src/observability/tracing.ts";
import { createRedis } from "../../src/queue/redis.ts";
import { loadExampleConfig } from "./example-config.ts";

export const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export interface RecordedCard {
  ref: string;
  versions: Card[];
  /** Where it was posted. */
  conversation?: Conversation;
}

/** A chat platform that remembers every post and edit, in order. */
export function createRecordingChat(): ChatPort & { cards: Map<string, RecordedCard>; log: string[] } {
  const cards = new Map<string, RecordedCard>();
  const log: string[] = [];
  let next = 1;
  return {
    cards,
    log,
    async post(conversation, card) {
      const ref = `m${next++}`;
      cards.set(ref, { ref, versions: [card], conversation });
      log.push(`post ${ref} ${card.lines[0]}`);
      return ref;
    },
    async update(_conversation, ref, card) {
      const entry = cards.get(ref);
      if (!entry) throw new Error(`update of unknown message ${ref}`);
      entry.versions.push(card);
      log.push(`update ${ref} ${card.lines[0]}`);
    },
  };
}

export function testConfig(overrides: Partial<Config["queue"]> = {}): Config {
  const base = loadExampleConfig();
  return {
    ...base,
    redisPrefix: `t${randomBytes(5).toString("hex")}`,
    queue: { ...base.queue, recheckMs: 300, leaseTtlMs: 3_000, lockDurationMs: 3_000, ...overrides },
  };
}

export interface TestRuntime {
  runtime: Runtime;
  chat: ReturnType<typeof createRecordingChat>;
  config: Config;
  waitForPhase(jobId: string, phases: string[], timeoutMs?: number): Promise<JobState>;
  close(): Promise<void>;
}

export const quietLog = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

export async function startTestRuntime(options: {
  executor: ExecutorPort;
  config?: Config;
  work?: boolean;
  notify?: boolean;
  concurrency?: number;
  github?: GitHubClient;
  /** Another Redis than the default (e.g. a cluster started by the test). */
  redisUrl?: string;
  tracing?: Tracing;
  /** Chat ports for more platforms than the shell (whose recording chat is `chat`). */
  chats?: ChatPorts;
}): Promise<TestRuntime> {
  const config = options.config ?? testConfig();
  const chat = createRecordingChat();
  const runtime = await createRuntime({
    config,
    redisUrl: options.redisUrl ?? redisUrl,
    executor: options.executor,
    chats: { ...options.chats, shell: chat },
    log: quietLog,
    accept: true,
    work: options.work ?? true,
    notify: options.notify ?? true,
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    ...(options.github ? { github: options.github } : {}),
    ...(options.tracing ? { tracing: options.tracing } : {}),
  });
  return {
    runtime,
    chat,
    config,
    async waitForPhase(jobId, phases, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      let last: JobState | undefined;
      while (Date.now() < deadline) {
        last = await runtime.status.read(jobId);
        if (last && phases.includes(last.phase)) return last;
        if (last && terminalPhases.has(last.phase)) break;
        await sleep(25);
      }
      throw new Error(
        `job ${jobId} did not reach ${phases.join("/")}; last state: ${last ? `${last.phase} ${last.text}` : "none"}`,
      );
    },
    async close() {
      await runtime.close();
      const redis = createRedis({ url: options.redisUrl ?? redisUrl, role: "worker" });
      await cleanupPrefix(redis, config.redisPrefix);
      await redis.quit();
    },
  };
}
