import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Runtime } from "../../src/bin/create-runtime.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import type { KubeEmulator } from "../emulators/kubernetes/server.ts";
import { type CliStack, startCliStack, waitUntil } from "../helpers/cli-stack.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import { freePort } from "../helpers/free-port.ts";
import type { ShipbotProcess } from "../helpers/spawn-shipbot.ts";

/** The test's stand-in for terminationGracePeriodSeconds: far above the rollout's few seconds. */
const graceMs = 20_000;

let stack: CliStack;
let emulator: KubeEmulator;
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
          replicas: 3,
        },
      ],
      stepMs: 300,
    },
  });
  ({ emulator, producer } = stack);
});

afterEach(async () => {
  await stack.close();
});

function start(args: string[]): ShipbotProcess {
  return stack.start(args);
}

function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  return waitUntil(what, probe, timeoutMs);
}

const finalState = (jobId: string) => async (): Promise<JobState | undefined> => {
  const s = await producer.status.read(jobId);
  return s && terminalPhases.has(s.phase) ? s : undefined;
};

describe("graceful shutdown", () => {
  it("finishes the rollout in progress exactly once and exits 0 within the grace period", async () => {
    const worker = start(["worker"]);
    const reply = await producer.handle(chatCommand("/deploy api staging v2", demoUser));
    expect(reply.error?.message).toBeUndefined();
    const jobId = reply.jobIds[0] as string;
    await waitFor("the rollout to be under way", async () => {
      const s = await producer.status.read(jobId);
      return s?.phase === "progress" && (s.progress?.updated ?? 0) >= 1 ? s : undefined;
    });
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(await (await producer.ops.queue.getJob(jobId))?.getState()).toBe("active");

    const signalledAt = Date.now();
    worker.child.kill("SIGTERM");
    const code = await Promise.race([
      worker.exited,
      sleep(graceMs).then(() => {
        throw new Error(`shipbot worker did not exit within ${graceMs} ms of SIGTERM:\n${worker.output()}`);
      }),
    ]);
    // Its output is the shell platform's cards (conversations typed in a terminal); nothing else.
    expect({ code, errors: worker.output().match(/error|shipbot:/gi) ?? [] }).toEqual({
      code: 0,
      errors: [],
    });
    expect(Date.now() - signalledAt).toBeLessThan(graceMs);

    // The job must end succeeded: recorded by the stopping worker, or finished by a new one that
    // reads the Deployment first and does not apply it again.
    let done = await finalState(jobId)();
    if (!done) {
      start(["worker"]);
      done = await waitFor("another worker to carry the job to its end", finalState(jobId));
    }
    expect(done.phase).toBe("succeeded");
    expect(done.text).toMatch(/^Deployed ghcr\.io\/acme\/api:v2 in \d+s/);
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
    const job = await producer.ops.queue.getJob(jobId);
    expect(await job?.getState()).toBe("completed");
  });
});

describe("shutdown while Redis is unreachable", () => {
  // Nothing is running and nothing can be recorded: the pod should go at once, not when the kubelet
  // kills it at the end of its grace period.
  it.each([
    ["serve", {}],
    ["serve with Teams", { SHIPBOT_TEAMS_DANGEROUSLY_ALLOW_UNAUTHENTICATED: "true" }],
  ])("%s exits 0 promptly on SIGTERM", async (_name, more: Record<string, string>) => {
    const nobody = `redis://127.0.0.1:${await freePort()}`;
    const serve = stack.start(["serve"], { REDIS_URL: nobody, LOG_LEVEL: "info", ...more });
    await waitFor("serve to start without Redis", async () =>
      serve.output().includes('"msg":"shipbot started"') ? true : undefined,
    );
    serve.child.kill("SIGTERM");
    const code = await Promise.race([
      serve.exited,
      sleep(5_000).then(() => {
        throw new Error(`shipbot serve did not exit within 5 s of SIGTERM:\n${serve.output().slice(-2000)}`);
      }),
    ]);
    expect(code).toBe(0);
  });
});
