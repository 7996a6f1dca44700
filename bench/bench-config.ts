import type { Redis } from "ioredis";
import { pino } from "pino";
import { createRuntime, type Runtime } from "../src/bin/create-runtime.ts";
import type { Config } from "../src/core/config.ts";
import type { ExecutorPort } from "../src/executors/port.ts";
import { createKeys } from "../src/queue/keys.ts";
import { type FetchedLeases, installAcquireOnFetch } from "../src/worker/acquire-on-fetch.ts";

/** Many services in one environment, so consecutive jobs rarely share a target (a company-wide release train). */
export function benchConfig(prefix: string, services: number, concurrency: number): Config {
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
      concurrency,
      leaseTtlMs: 30_000,
      recheckMs: 5_000,
      lockDurationMs: 30_000,
      rolloutTimeoutMs: 60_000,
    },
    environments: { staging: { freezes: [] } },
    services: svc,
    roles: {
      deployer: {
        permissions: ["deploy", "rollback", "scale", "read", "cancel"],
        environments: ["*"],
        services: ["*"],
        users: ["shell:bench"],
        groups: [],
      },
    },
  };
}

/** An executor that does nothing, so the figures are the queue's alone. `onDeploy` sees each call. */
export function noopExecutor(onDeploy?: (deployment: string) => void): ExecutorPort {
  return {
    async deploy(target, image) {
      onDeploy?.(target.deployment);
      return { summary: "", image, previousImage: image, revision: 1, replicas: 1, resumed: false };
    },
    async rollback() {
      return { summary: "", image: "x:1", previousImage: "x:1", revision: 1, replicas: 1, resumed: false };
    },
    async scale(_t, replicas) {
      return { summary: "", image: "x:1", previousImage: "x:1", revision: 1, replicas, resumed: false };
    },
    async status() {
      throw new Error("not used by the benchmarks");
    },
    async history() {
      return [];
    },
  };
}

/** A chat that answers at once, for scenarios that render cards without a platform. */
export const silentChat = {
  async post() {
    return "ref";
  },
  async update() {},
};

/** The accept path alone (no worker, no notifier), with the no-op executor: what the producer scenarios drive. */
export function startProducer(config: Config, redisUrl: string): Promise<Runtime> {
  return createRuntime({
    config,
    redisUrl,
    executor: noopExecutor(),
    chats: {},
    log: pino({ level: "silent" }),
    accept: true,
    work: false,
    notify: false,
  });
}

/**
 * A raw worker's fetch wrapped as shipbot's worker wraps it (`installAcquireOnFetch`), with an acquire
 * that answers "acquired" and runs no Redis command: the payload is still found, decoded and checked,
 * and the acquire's keys and arguments made. Measures what the wrapping costs before the acquire works.
 */
export function wrapFetchWithEmptyAcquire(connection: Redis, concurrency: number): FetchedLeases {
  return installAcquireOnFetch(connection, {
    keys: createKeys("bull"),
    config: benchConfig("unused", 1, concurrency),
    staleMs: 16_000,
    runningText: { deploy: "Deploying", rollback: "Rolling back", scale: "Scaling" },
    acquireBody: "do return { 'acquired', '1', '1' } end",
  });
}
