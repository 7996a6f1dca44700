import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanupPrefix } from "../../src/bin/cleanup-prefix.ts";
import { createRuntime, type Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../../src/executors/kubernetes/index.ts";
import type { ExecutorPort } from "../../src/executors/port.ts";
import { createRedis } from "../../src/queue/redis.ts";
import {
  type KubeEmulator,
  type KubeEmulatorOptions,
  startKubeEmulator,
} from "../emulators/kubernetes/server.ts";
import { type ShipbotProcess, spawnShipbot, writeConfig } from "./spawn-shipbot.ts";
import { redisUrl as localRedisUrl, quietLog, testConfig } from "./test-runtime.ts";

export { waitUntil } from "./wait-for.ts";

/**
 * Real `shipbot` processes against the Kubernetes emulator and the local Redis, with an accept-only
 * runtime in the test process to send commands and read states. Short lock and lease times, so a
 * killed worker is noticed within seconds.
 */
export interface CliStack {
  emulator: KubeEmulator;
  config: Config;
  /** The environment the processes get: config file, kubeconfig, Redis, quiet logs. */
  env: Record<string, string>;
  /** An executor on the same emulator, for tests that act as a worker would. */
  executor: ExecutorPort;
  producer: Runtime;
  /** Starts `shipbot <args>` (with more environment if given); every process started is killed on close. */
  start(args: string[], env?: Record<string, string>): ShipbotProcess;
  close(): Promise<void>;
}

export async function startCliStack(options: {
  emulator: KubeEmulatorOptions;
  pollMs?: number;
  /** Another Redis than the local one: a cluster or Sentinel URL of a server the test started. */
  redisUrl?: string;
  /** Another configuration than the example's with short lock and lease times. */
  config?: Config;
  /** More environment for every process (e.g. Slack settings). */
  env?: Record<string, string>;
}): Promise<CliStack> {
  const emulator = await startKubeEmulator(options.emulator);
  const dir = await mkdtemp(join(tmpdir(), "shipbot-cli-"));
  const config = options.config ?? testConfig({ lockDurationMs: 2_000, leaseTtlMs: 2_000, recheckMs: 300 });
  const redisUrl = options.redisUrl ?? localRedisUrl;
  const env = {
    SHIPBOT_CONFIG: await writeConfig(dir, config),
    KUBECONFIG: await emulator.writeKubeconfig(join(dir, "kubeconfig")),
    REDIS_URL: redisUrl,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    ...options.env,
  };
  const executor = createKubernetesExecutor({
    kubeConfig: loadKubeConfig({ kubeconfigPath: env.KUBECONFIG }),
    ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
  });
  const producer = await createRuntime({
    config,
    redisUrl,
    executor,
    chats: {},
    log: quietLog,
    accept: true,
    work: false,
    notify: false,
  });
  const processes: ShipbotProcess[] = [];
  return {
    emulator,
    config,
    env,
    executor,
    producer,
    start(args, more) {
      const p = spawnShipbot(args, { ...env, ...more });
      processes.push(p);
      return p;
    },
    async close() {
      for (const p of processes.splice(0)) {
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
        await p.exited;
      }
      await producer.close();
      const redis = createRedis({ url: redisUrl, role: "worker" });
      await cleanupPrefix(redis, config.redisPrefix);
      await redis.quit();
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Environment pointing the processes at a Slack Web API emulator, with shipbot's pacing scaled like the
 * emulator's limits. A worker needs only the bot token; the signing secret satisfies the settings check.
 */
export function slackEnv(options: {
  apiUrl: string;
  botToken: string;
  timeScale: number;
  signingSecret?: string;
}): Record<string, string> {
  return {
    SLACK_BOT_TOKEN: options.botToken,
    SLACK_SIGNING_SECRET: options.signingSecret ?? "test-signing-secret",
    SLACK_API_URL: options.apiUrl,
    SLACK_POST_INTERVAL_MS: String(Math.ceil(1100 * options.timeScale)),
    SLACK_UPDATE_INTERVAL_MS: String(Math.ceil(1250 * options.timeScale)),
  };
}
