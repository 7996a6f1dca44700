#!/usr/bin/env node
import { once } from "node:events";
import type { Server } from "node:http";
import { commandRegistry } from "../../commands/index.ts";
import { createShellChat } from "../adapters/shell/create-shell-chat.ts";
import { runShell } from "../adapters/shell/run-shell.ts";
import {
  createSlackAdapter,
  createSlackChat,
  createSlackWebClient,
  slackGroupIdsOf,
} from "../adapters/slack/index.ts";
import { createConversationStore, createTeamsAdapter } from "../adapters/teams/index.ts";
import { createAlertInbox, createAlertsRoute } from "../alerts/index.ts";
import { ConfigError, loadConfig } from "../config/load-config.ts";
import { readSettings, SettingsError } from "../config/settings.ts";
import { isShipbotError } from "../core/errors.ts";
import { createGitOpsExecutor } from "../executors/gitops/index.ts";
import { createKubernetesExecutor, loadKubeConfig } from "../executors/kubernetes/index.ts";
import { gitOpsFileFor, routeExecutor } from "../executors/route-executor.ts";
import { createGitHubClient } from "../github/index.ts";
import { createDashboardRoute } from "../http/create-dashboard-route.ts";
import { createHttpServer } from "../http/create-http-server.ts";
import { createMetricsRoute } from "../http/create-metrics-route.ts";
import { collectQueueMetrics, toQueueTargets } from "../observability/collect-queue-metrics.ts";
import { createLogger } from "../observability/create-logger.ts";
import { createMetrics, timeAcks } from "../observability/metrics.ts";
import { startTracing } from "../observability/tracing.ts";
import { checkEvictionPolicy, closeRedis, createRedis } from "../queue/redis.ts";
import { createRuntime, type Runtime } from "./create-runtime.ts";
import { runAudit } from "./run-audit.ts";
import { runDemo } from "./run-demo.ts";

const usage = `shipbot: ChatOps releases on Kubernetes

usage: shipbot <command>

  serve                    accept commands over HTTP (health at /healthz, /readyz)
  worker [--no-cards|--no-jobs]
                           run deploy, rollback and scale jobs and keep their cards up to date
                           (--no-cards: jobs only; --no-jobs: cards only)
  all                      serve and worker in one process
  shell                    type commands in this terminal, against the configured cluster
  demo                     try it locally: a Kubernetes emulator, the local Redis, and a prompt
  config validate <file>   check a configuration file and exit
  audit export [--since <time>]
                           write the audit stream as JSON Lines (time: ISO date, or 30m, 24h, 7d ago)
  audit verify             recompute the audit hash chain and report the first broken link

environment: SHIPBOT_CONFIG (default shipbot.yaml), REDIS_URL (default redis://127.0.0.1:6379),
KUBECONFIG (default: in-cluster config), PORT (default 8080), LOG_LEVEL (default info)`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${usage}\n`);
    return command === undefined ? 2 : 0;
  }
  const settings = readSettings(process.env);

  if (command === "config") {
    const [verb, file] = rest;
    if (verb !== "validate" || file === undefined) {
      process.stderr.write("usage: shipbot config validate <file>\n");
      return 2;
    }
    const config = await loadConfig(file);
    const services = Object.keys(config.services).length;
    const envs = Object.keys(config.environments).length;
    process.stdout.write(
      `${file}: valid (${services} services, ${envs} environments, ${Object.keys(config.roles).length} roles)\n`,
    );
    return 0;
  }
  if (command === "demo") return runDemo(settings, process.stdin, process.stdout);
  if (command === "audit") return runAudit(settings, rest);

  if (!["serve", "worker", "all", "shell"].includes(command)) {
    process.stderr.write(`shipbot: unknown command "${command}"\n\n${usage}\n`);
    return 2;
  }
  const log = createLogger(settings.logLevel);
  const config = await loadConfig(settings.configPath);
  const github = settings.github
    ? createGitHubClient({
        auth: settings.github.auth,
        ...(settings.github.baseUrl ? { baseUrl: settings.github.baseUrl } : {}),
        log,
      })
    : undefined;
  const kubernetes = createKubernetesExecutor({
    kubeConfig: loadKubeConfig({ kubeconfigPath: settings.kubeconfigPath }),
  });
  const viaGitOps = Object.entries(config.services).filter(([, svc]) => svc.gitops !== undefined);
  if (viaGitOps.length > 0 && !github) {
    throw new SettingsError(
      `${viaGitOps.map(([name]) => name).join(", ")} deploy through GitOps: set GITHUB_TOKEN (or GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY and GITHUB_APP_INSTALLATION_ID) so shipbot can commit to the config repositories`,
    );
  }
  const executor = routeExecutor(
    config,
    kubernetes,
    github && viaGitOps.length > 0
      ? createGitOpsExecutor({
          github,
          kubeExecutorForWatching: kubernetes,
          repos: (target) => gitOpsFileFor(config, target),
          timeoutMs: config.queue.rolloutTimeoutMs,
          pollMs: 2_000,
          log,
        })
      : undefined,
  );
  const shellChat = createShellChat(process.stdout, Boolean(process.stdout.isTTY));

  if (command === "shell") {
    const runtime = await createRuntime({
      ...(github ? { github } : {}),
      config,
      redisUrl: settings.redisUrl,
      executor,
      chats: { shell: shellChat },
      log,
      accept: true,
      work: true,
      notify: true,
    });
    const user = process.env.USER ?? "operator";
    try {
      const result = await runShell({
        input: process.stdin,
        output: process.stdout,
        user: { id: `shell:${user}`, name: user, groups: [] },
        session: `shell-${process.pid}`,
        handle: runtime.handle,
        readJob: (jobId) => runtime.status.read(jobId),
        isShown: async () => true,
        interactive: Boolean(process.stdin.isTTY),
        color: Boolean(process.stdout.isTTY),
      });
      return result.failedCommands + result.failedJobs > 0 ? 1 : 0;
    } finally {
      await runtime.close();
    }
  }

  const flags = new Set(rest);
  for (const flag of flags) {
    if (command !== "worker" || (flag !== "--no-cards" && flag !== "--no-jobs")) {
      process.stderr.write(`shipbot: unknown option "${flag}" for ${command}\n\n${usage}\n`);
      return 2;
    }
  }
  const accept = command !== "worker";
  const notify = command !== "serve" && !flags.has("--no-cards");

  // The adapter needs the runtime's handlers and the runtime needs the adapter's chat port.
  let runtime: Runtime | undefined;
  const slack = settings.slack;
  const slackIn =
    slack && accept
      ? createSlackAdapter({
          botToken: slack.botToken,
          signingSecret: slack.signingSecret ?? "",
          ...(slack.appToken ? { appToken: slack.appToken } : {}),
          ...(slack.apiUrl ? { apiUrl: slack.apiUrl } : {}),
          ...(slack.pace ? { pace: slack.pace } : {}),
          handle: (c) => (runtime as Runtime).handle(c),
          handleAction: (a) => (runtime as Runtime).handleAction(a),
          log: log.child({ adapter: "slack" }),
          groupIds: slackGroupIdsOf(config),
        })
      : undefined;
  // A worker only posts and edits cards: it needs the bot token, not the signing secret.
  const slackChat =
    slackIn?.chat ??
    (slack
      ? createSlackChat(
          createSlackWebClient({
            botToken: slack.botToken,
            log,
            ...(slack.apiUrl ? { apiUrl: slack.apiUrl } : {}),
          }),
          {
            ...slack.pace,
            postClient: createSlackWebClient({
              botToken: slack.botToken,
              log,
              retries: 0,
              ...(slack.apiUrl ? { apiUrl: slack.apiUrl } : {}),
            }),
          },
        )
      : undefined);
  // Teams: conversation references live in Redis so any replica can post proactively after a restart.
  const teamsSettings = settings.teams;
  // Aborted when stopping, so that this connection does not wait for an unreachable Redis (createRedis).
  const stopping = new AbortController();
  const teamsRedis = teamsSettings
    ? createRedis({ url: settings.redisUrl, role: "worker", signal: stopping.signal })
    : undefined;
  teamsRedis?.on("error", (error) => log.warn({ err: error }, "redis connection problem (teams)"));
  const teams =
    teamsSettings && teamsRedis
      ? createTeamsAdapter({
          appId: teamsSettings.appId,
          appType: teamsSettings.appType,
          dangerouslyAllowUnauthenticated: teamsSettings.dangerouslyAllowUnauthenticated,
          ...(teamsSettings.appPassword ? { appPassword: teamsSettings.appPassword } : {}),
          ...(teamsSettings.tenantId ? { tenantId: teamsSettings.tenantId } : {}),
          handle: (c) => (runtime as Runtime).handle(c),
          handleAction: (a) => (runtime as Runtime).handleAction(a),
          log: log.child({ adapter: "teams" }),
          conversationStore: createConversationStore({ redis: teamsRedis, prefix: config.redisPrefix }),
        })
      : undefined;
  const metrics = createMetrics({ commandNames: commandRegistry.keys() });
  const tracing = startTracing(settings.tracesEndpoint ? { endpoint: settings.tracesEndpoint } : {});
  runtime = await createRuntime({
    ...(tracing ? { tracing } : {}),
    ...(github ? { github } : {}),
    config,
    redisUrl: settings.redisUrl,
    executor,
    chats: {
      shell: shellChat,
      ...(slackChat ? { slack: slackChat } : {}),
      ...(teams ? { teams: teams.chat } : {}),
    },
    log,
    accept,
    work: command !== "serve" && !flags.has("--no-jobs"),
    notify,
    metrics,
    ...(settings.alerts.alertmanagerUrl ? { alertmanagerUrl: settings.alerts.alertmanagerUrl } : {}),
  });
  const live = runtime;
  collectQueueMetrics({
    registry: metrics.registry,
    queue: live.ops.queue,
    redis: live.redis,
    keys: live.keys,
    targets: toQueueTargets(config),
    log,
  });
  const dashboard = settings.dashboard
    ? createDashboardRoute({
        queues: [{ queue: live.ops.queue, displayName: "operations" }],
        auth: settings.dashboard,
      })
    : undefined;
  await slackIn?.start();
  await teams?.start();
  const alertInbox = createAlertInbox(live.redis, live.keys);
  const server = createHttpServer({
    log,
    ready: async () => {
      const reasons: string[] = [];
      try {
        await live.redis.ping();
        // BullMQ's guarantees hold only without eviction; a Redis that may drop keys is not ready.
        // (A managed Redis that refuses CONFIG GET is warned about at start-up, not held unready.)
        const eviction = await checkEvictionPolicy(live.redis);
        if (eviction?.startsWith("Redis maxmemory-policy is")) reasons.push(eviction);
      } catch {
        reasons.push("Redis is not reachable");
      }
      return { ok: reasons.length === 0, reasons };
    },
    routes: {
      ...(slackIn ? timeAcks(slackIn.routes, metrics, "slack") : {}),
      ...(teams && accept ? timeAcks(teams.routes, metrics, "teams") : {}),
      "GET /metrics": createMetricsRoute(metrics.registry),
      ...(settings.alerts.token && accept
        ? {
            "POST /hooks/alertmanager": createAlertsRoute({
              token: settings.alerts.token,
              ingest: async (payload) => {
                await alertInbox.push(payload);
                for (const alert of payload.alerts)
                  metrics.alertsReceived.labels({ status: alert.status }).inc();
              },
              log: log.child({ route: "alertmanager" }),
            }),
          }
        : {}),
      ...dashboard?.routes,
    },
  });
  const stop = async (): Promise<void> => {
    stopping.abort();
    await slackIn?.stop();
    await teams?.stop();
    server.close();
    await live.close();
    if (teamsRedis) await closeRedis(teamsRedis);
    await tracing?.shutdown();
  };
  try {
    await listen(server, settings.port, settings.host);
  } catch (error) {
    // The runtime is already connected (and, in `all` or `worker`, taking jobs): stop it, or the
    // process lives on without its probes and metrics.
    await stop();
    throw error;
  }
  log.info({ port: settings.port, mode: command }, "shipbot started");

  await Promise.race([once(process, "SIGTERM"), once(process, "SIGINT")]);
  log.info("shutting down: no new work; running jobs finish");
  await stop();
  // Everything is closed. What can still hold the process is a job left running because Redis was
  // unreachable (see closeOpWorker in create-runtime.ts): nothing it does can be recorded, and BullMQ's
  // stalled check hands it to another worker. Exit rather than follow its rollout to the end.
  process.exit(0);
}

/** Starts listening; a port that cannot be taken becomes a one-line error naming PORT and HOST. */
async function listen(server: Server, port: number, host: string): Promise<void> {
  server.listen(port, host);
  try {
    await once(server, "listening");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "EADDRINUSE"
        ? "the port is already in use; set PORT to a free one"
        : code === "EACCES"
          ? "ports below 1024 need privileges; set PORT to 1024 or above"
          : code === "EADDRNOTAVAIL" || code === "ENOTFOUND"
            ? "HOST is not an address of this machine; set HOST (default 0.0.0.0)"
            : `${code ?? "listen failed"}; check PORT and HOST`;
    throw new SettingsError(`cannot listen on ${host}:${port}: ${why}`, { cause: error });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError || error instanceof SettingsError || isShipbotError(error)) {
      process.stderr.write(`shipbot: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(
      `shipbot: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
