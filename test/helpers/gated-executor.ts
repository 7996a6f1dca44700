import type {
  ExecutionContext,
  ExecutionResult,
  ExecutorPort,
  Target,
  TargetStatus,
} from "../../src/executors/port.ts";

export interface GatedCall {
  kind: "deploy" | "rollback" | "scale";
  target: Target;
  arg: string | number | undefined;
  ctx: ExecutionContext;
  /** Lets the operation finish. */
  finish(): void;
  fail(error: unknown): void;
}

/**
 * An executor whose operations wait until the test lets them finish, to observe ordering and
 * serialization in the queue. Rollouts against a real API are covered by the Kubernetes emulator tests.
 */
export function createGatedExecutor() {
  const calls: GatedCall[] = [];
  const waiters: Array<() => void> = [];
  const images = new Map<string, string>();
  const key = (t: Target) => `${t.namespace}/${t.deployment}`;

  function run(
    kind: GatedCall["kind"],
    target: Target,
    arg: GatedCall["arg"],
    ctx: ExecutionContext,
  ): Promise<ExecutionResult> {
    return new Promise<ExecutionResult>((resolve, reject) => {
      const previousImage = images.get(key(target)) ?? "img:v1";
      const image = kind === "deploy" ? String(arg) : previousImage;
      calls.push({
        kind,
        target,
        arg,
        ctx,
        finish: () => {
          images.set(key(target), image);
          resolve({
            summary: "done",
            image,
            previousImage,
            revision: calls.length,
            replicas: 2,
            resumed: false,
          });
        },
        fail: reject,
      });
      ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
      for (const wake of waiters.splice(0)) wake();
    });
  }

  const executor: ExecutorPort = {
    deploy: (target, image, ctx) => run("deploy", target, image, ctx),
    rollback: (target, revision, ctx) => run("rollback", target, revision, ctx),
    scale: (target, replicas, ctx) => run("scale", target, replicas, ctx),
    async status(target): Promise<TargetStatus> {
      const image = images.get(key(target)) ?? "img:v1";
      const rollout = {
        desired: 2,
        updated: 2,
        available: 2,
        total: 2,
        message: "done",
        done: true,
        observed: true,
      };
      return { image, revision: 1, desired: 2, updated: 2, available: 2, rollout, lastJobId: undefined };
    },
    async history() {
      return [];
    },
  };

  return {
    executor,
    calls,
    /** Resolves once at least `count` operations have started. */
    async started(count: number, timeoutMs = 10_000): Promise<GatedCall[]> {
      const deadline = Date.now() + timeoutMs;
      while (calls.length < count) {
        if (Date.now() > deadline) throw new Error(`only ${calls.length} of ${count} operations started`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
      return calls;
    },
  };
}
