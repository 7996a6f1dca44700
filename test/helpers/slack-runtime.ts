import { Redis } from "ioredis";
import { createSlackChat, createSlackWebClient } from "../../src/adapters/slack/index.ts";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import type { SlackEmulator } from "../emulators/slack/index.ts";
import type { createGatedExecutor } from "./gated-executor.ts";
import { quietLog, redisUrl, testConfig } from "./test-runtime.ts";

export interface SlackRuntime {
  runtime: Runtime;
  config: Config;
  /** The message a job's card was stored as, and the state it showed. */
  cardRef(jobId: string): Promise<{ ref: string; seq: number } | undefined>;
  /** Each card's message once every card is stored at its job's final state (`seq`), else undefined. */
  finalCards(states: ReadonlyArray<{ jobId: string; seq: number }>): Promise<string[] | undefined>;
  close(): Promise<void>;
}

/**
 * A whole runtime (accept, worker, notifier) whose chat is the real Slack chat port on the emulator, wired
 * as shipbot wires it: a Web API client with a short timeout (a hanging Slack costs a test little) and its
 * own two retries, and a post client that never retries (only the notifier does, after a lookup).
 */
export async function startSlackRuntime(options: {
  slack: SlackEmulator;
  botToken: string;
  executor: ReturnType<typeof createGatedExecutor>;
  pace?: { postIntervalMs: number; updateIntervalMs: number };
}): Promise<SlackRuntime> {
  const { slack, botToken, executor } = options;
  const config = testConfig();
  const apiUrl = `${slack.url}/api/`;
  const client = createSlackWebClient({ botToken, apiUrl, log: quietLog, timeoutMs: 300 });
  const chat = createSlackChat(client, {
    ...options.pace,
    postClient: createSlackWebClient({ botToken, apiUrl, log: quietLog, timeoutMs: 300, retries: 0 }),
  });
  const runtime = await createRuntime({
    config,
    redisUrl,
    executor: executor.executor,
    chats: { slack: chat },
    log: quietLog,
    accept: true,
    work: true,
    notify: true,
  });
  const cardRef = async (jobId: string) => {
    const stored = await runtime.redis.get(runtime.keys.cardRef(jobId));
    return stored ? (JSON.parse(stored) as { ref: string; seq: number }) : undefined;
  };
  return {
    runtime,
    config,
    cardRef,
    async finalCards(states) {
      const found: string[] = [];
      for (const s of states) {
        const ref = await cardRef(s.jobId);
        if (!ref || ref.seq < s.seq) return undefined;
        found.push(ref.ref);
      }
      return found;
    },
    async close() {
      // Closing waits for running jobs: let any operation a failed test left at its gate through.
      const releasing = setInterval(() => {
        for (const call of executor.calls) call.finish();
      }, 20);
      await runtime.close();
      clearInterval(releasing);
      const redis = new Redis(redisUrl);
      await cleanupPrefix(redis, config.redisPrefix);
      await redis.quit();
    },
  };
}
