import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { createShellChat } from "../adapters/shell/create-shell-chat.ts";
import { runShell } from "../adapters/shell/run-shell.ts";
import { loadConfig } from "../config/load-config.ts";
import type { Settings } from "../config/settings.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../executors/kubernetes/index.ts";
import { createLogger } from "../observability/create-logger.ts";
import { cleanupPrefix } from "./cleanup-prefix.ts";
import { createRuntime } from "./create-runtime.ts";

const exampleConfig = new URL("../../examples/shipbot.yaml", import.meta.url).pathname;
const emulatorModule = new URL("../../test/emulators/kubernetes/server.ts", import.meta.url).href;

/** The part of the Kubernetes emulator (test/emulators/kubernetes) the demo uses; it ships with the source only. */
interface EmulatorModule {
  startKubeEmulator(options: { deployments: typeof seeds; stepMs: number }): Promise<{
    writeKubeconfig(path: string): Promise<string>;
    close(): Promise<void>;
  }>;
}

/** The sample cluster: two services in two environments, each with one earlier revision to roll back to. */
const seeds = ["staging", "production"].flatMap((namespace) => [
  {
    namespace,
    name: "api",
    image: "ghcr.io/acme/api:v1.0.0",
    previousImages: ["ghcr.io/acme/api:v0.9.0"],
    replicas: 3,
  },
  {
    namespace,
    name: "web",
    image: "ghcr.io/acme/web:v1.0.0",
    previousImages: ["ghcr.io/acme/web:v0.9.0"],
    replicas: 2,
  },
]);

async function checkRedis(url: string): Promise<string | undefined> {
  const probe = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: 2_000,
  });
  probe.on("error", () => undefined);
  try {
    await probe.connect();
    await probe.ping();
    return undefined;
  } catch {
    return `the demo needs Redis at ${url}: start one with \`redis-server --port 6379\` or point REDIS_URL at yours`;
  } finally {
    probe.disconnect();
  }
}

/**
 * `npm run demo`: a Kubernetes emulator with sample deployments, the local Redis under a throwaway
 * key prefix, a worker and notifier in this process, and a prompt that acts as a chat conversation.
 */
export async function runDemo(
  settings: Settings,
  input: NodeJS.ReadStream,
  output: NodeJS.WriteStream,
): Promise<number> {
  const problem = await checkRedis(settings.redisUrl);
  if (problem) {
    process.stderr.write(`shipbot demo: ${problem}\n`);
    return 2;
  }
  const interactive = Boolean(input.isTTY);
  const color = Boolean(output.isTTY);
  // Logs go to stderr and stay quiet unless asked for: the terminal is the chat here.
  const log = createLogger(process.env.LOG_LEVEL ?? "error");

  let emulatorApi: EmulatorModule;
  try {
    emulatorApi = (await import(emulatorModule)) as EmulatorModule;
  } catch (error) {
    process.stderr.write(
      `shipbot demo: the Kubernetes emulator is not available here (${String(error)}); run the demo from a source checkout\n`,
    );
    return 2;
  }
  const emulator = await emulatorApi.startKubeEmulator({ deployments: seeds, stepMs: 250 });
  const dir = await mkdtemp(join(tmpdir(), "shipbot-demo-"));
  const kubeconfigPath = await emulator.writeKubeconfig(join(dir, "kubeconfig"));

  const base = await loadConfig(exampleConfig);
  const config = {
    ...base,
    redisPrefix: `shipbot-demo-${randomBytes(4).toString("hex")}`,
    queue: { ...base.queue, recheckMs: 500, leaseTtlMs: 5_000 },
  };
  const executor = createKubernetesExecutor({ kubeConfig: loadKubeConfig({ kubeconfigPath }) });
  const chat = createShellChat(output, color);
  const runtime = await createRuntime({
    config,
    redisUrl: settings.redisUrl,
    executor,
    chats: { shell: chat },
    log,
    accept: true,
    work: true,
    notify: true,
  });

  if (interactive) {
    output.write(
      [
        "shipbot demo: a local Kubernetes emulator with api and web in staging and production.",
        "You are `demo`, allowed everything in staging and read-only in production.",
        "Try: /deploy api staging v2   /status api   /rollback api staging   /scale api staging 4   /help   (exit to quit)",
        "",
      ].join("\n"),
    );
  }
  let code = 0;
  try {
    const result = await runShell({
      input,
      output,
      user: { id: "shell:demo", name: "demo", groups: [] },
      session: "demo",
      handle: runtime.handle,
      readJob: (jobId) => runtime.status.read(jobId),
      isShown: async (jobId) => {
        const [state, ref] = await Promise.all([
          runtime.status.read(jobId),
          runtime.redis.get(runtime.keys.cardRef(jobId)),
        ]);
        return state !== undefined && ref !== null && (JSON.parse(ref) as { seq: number }).seq >= state.seq;
      },
      interactive,
      color,
    });
    code = result.failedCommands > 0 || result.failedJobs > 0 ? 1 : 0;
  } finally {
    await runtime.close();
    const cleanup = new Redis(settings.redisUrl, { maxRetriesPerRequest: 1 });
    await cleanupPrefix(cleanup, config.redisPrefix).finally(() => cleanup.quit());
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
  return code;
}
