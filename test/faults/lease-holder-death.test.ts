import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Runtime } from "../../src/bin/create-runtime.ts";
import { isShipbotError, type ShipbotError } from "../../src/core/errors.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import type { ExecutorPort } from "../../src/executors/port.ts";
import type { KubeEmulator } from "../emulators/kubernetes/server.ts";
import { type CliStack, startCliStack, waitUntil } from "../helpers/cli-stack.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import type { ShipbotProcess } from "../helpers/spawn-shipbot.ts";

let stack: CliStack;
let emulator: KubeEmulator;
let executor: ExecutorPort;
let producer: Runtime;

beforeEach(async () => {
  stack = await startCliStack({
    emulator: {
      deployments: [
        {
          namespace: "staging",
          name: "api",
          image: "ghcr.io/acme/api:v1.0.0",
          previousImages: ["ghcr.io/acme/api:v0.9.0"],
          // Six replicas a step apart: seconds between "under way" and "done", so the kill lands mid-rollout
          // even on a busy machine.
          replicas: 6,
        },
      ],
      stepMs: 600,
    },
    pollMs: 50,
  });
  ({ emulator, producer, executor } = stack);
});

afterEach(async () => {
  await stack.close();
});

function start(args: string[]): ShipbotProcess {
  return stack.start(args);
}

function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 25_000): Promise<T> {
  return waitUntil(what, probe, timeoutMs);
}

async function enqueue(text: string): Promise<string> {
  const reply = await producer.handle(chatCommand(text, demoUser));
  expect(reply.error?.message).toBeUndefined();
  return reply.jobIds[0] as string;
}

const finalState = (jobId: string) => () =>
  producer.status.read(jobId).then((s) => (s && terminalPhases.has(s.phase) ? s : undefined));

const annotationsOf = (): Record<string, string> =>
  emulator.deployment("staging", "api").metadata.annotations ?? {};

async function rejection(promise: Promise<unknown>): Promise<ShipbotError> {
  try {
    await promise;
  } catch (error) {
    if (isShipbotError(error)) return error;
    throw error;
  }
  throw new Error("expected the call to be refused");
}

describe("no operation is applied twice: a lease holder dies", () => {
  it("lets the target's next job proceed after the killed holder's lease expires, and fences the stale holder", async () => {
    const holder = start(["worker"]);
    const first = await enqueue("/deploy api staging v2");
    // Under way and not finished: the controller has seen the change (the first progress state may
    // still carry the old ReplicaSet's counts) and some, not all, replicas are updated.
    await waitFor("the rollout to be under way", async () => {
      const s = await producer.status.read(first);
      const updated = s?.progress?.updated ?? 0;
      return s?.phase === "progress" && / updated /.test(s.text) && updated >= 1 && updated <= 2
        ? s
        : undefined;
    });
    expect(emulator.writes("staging", "api")).toBe(1);
    const staleFence = Number(annotationsOf()["shipbot.dev/fence"]);
    expect(annotationsOf()["shipbot.dev/job-id"]).toBe(first);
    expect(Number.isFinite(staleFence)).toBe(true);

    holder.child.kill("SIGKILL");
    await holder.exited;
    // The next operation on the same target, queued while the dead process still "holds" it.
    const next = await enqueue("/scale api staging 4");

    start(["worker"]);
    const states: JobState[] = [];
    for (const id of [first, next]) states.push(await waitFor(`job ${id} to end`, finalState(id)));
    // The next job proceeded once the dead holder's lock and lease expired.
    expect(states[1]?.phase).toBe("succeeded");
    expect(states[1]?.text).toMatch(/^Scaled to 4 replicas in \d+s$/);
    // Which of the two the new worker runs first is a race (BullMQ's stalled check returning the deploy
    // vs the scale's recheck taking the expired lease). Deploy first: it resumes its own write. Scale
    // first: the retried deploy finds its image live and finishes without writing.
    expect(`${states[0]?.phase}: ${states[0]?.text}`).toMatch(
      /^succeeded: Deployed ghcr\.io\/acme\/api:v2 in \d+s( \(finished after a worker restart; applied once\))?$/,
    );
    // Either way: the deploy was applied once (by the dead holder, never again), then the scale: its
    // claim on the Deployment, then the scale subresource.
    expect(emulator.writes("staging", "api")).toBe(1 + 2);
    expect(emulator.deployment("staging", "api").spec.replicas).toBe(4);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
    expect(annotationsOf()["shipbot.dev/job-id"]).toBe(next);
    const newerFence = Number(annotationsOf()["shipbot.dev/fence"]);
    expect(newerFence).toBeGreaterThan(staleFence);

    // The dead holder, had it only been paused (GC, network partition), comes back with its old token:
    // every kind of write is refused and nothing reaches the cluster.
    const writesBefore = emulator.writes("staging", "api");
    const target = { namespace: "staging", deployment: "api", container: "api" };
    const stale = {
      jobId: "jstaleholder1",
      fence: staleFence,
      signal: AbortSignal.timeout(10_000),
      onProgress: () => undefined,
    };
    for (const refused of [
      await rejection(executor.deploy(target, "ghcr.io/acme/api:v9", stale)),
      await rejection(executor.rollback(target, undefined, stale)),
      await rejection(executor.scale(target, 1, stale)),
    ]) {
      expect(refused.code).toBe("conflict");
      expect(refused.message).toBe(
        `a newer operation owns api in staging (fence ${newerFence} > ${staleFence}); this one stops without changing anything`,
      );
    }
    expect(emulator.writes("staging", "api")).toBe(writesBefore);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
    expect(emulator.deployment("staging", "api").spec.replicas).toBe(4);
  });

  // The interleaving above in which the scale runs first, made deterministic by calling the executor as
  // the worker would: the retried deploy's change is live, so it finishes without writing.
  it("lets a retried deploy whose change is already live finish, even after a later job wrote", async () => {
    const target = { namespace: "staging", deployment: "api", container: "api" };
    const ctx = (jobId: string, fence: number, firstFence = fence) => ({
      jobId,
      fence,
      firstFence,
      signal: AbortSignal.timeout(15_000),
      onProgress: () => undefined,
    });
    // Attempt 1 of the deploy (fence 1) applies v2; its worker dies afterwards.
    await executor.deploy(target, "ghcr.io/acme/api:v2", ctx("jdeployretry1", 1));
    // The target's next job takes the expired lease first (fence 2) and scales.
    await executor.scale(target, 4, ctx("jscalenext01", 2));
    const writes = emulator.writes("staging", "api");
    // Attempt 2 of the deploy (fence 3, first fence 1): v2 already runs; nothing to apply.
    const result = await executor.deploy(target, "ghcr.io/acme/api:v2", ctx("jdeployretry1", 3, 1));
    expect(result.image).toBe("ghcr.io/acme/api:v2");
    expect(emulator.writes("staging", "api")).toBe(writes);
  });
});
