import { afterEach, describe, expect, it } from "vitest";
import { toExecutorError } from "../../src/executors/kubernetes/to-executor-error.ts";
import type { ExecutorPort } from "../../src/executors/port.ts";
import { chatCommand, demoUser, sreUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { startTestRuntime, type TestRuntime } from "../helpers/test-runtime.ts";

/**
 * `/history` and `/status` read what shipbot recorded of each operation (the deriver's history list) and,
 * for status, what the cluster reports: a person asks them to learn who changed what, and how it ended.
 */

let current: TestRuntime | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

const line = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC · /;

async function lines(t: TestRuntime, text: string, user = demoUser): Promise<string[]> {
  const reply = await t.runtime.handle(chatCommand(text, user));
  expect(reply.error?.message).toBeUndefined();
  return reply.card?.lines ?? [];
}

/** History is written when the deriver reads a job's end, just after its final state: wait for `count` lines. */
async function historyOf(t: TestRuntime, text: string, count: number): Promise<string[]> {
  let last: string[] = [];
  for (let i = 0; i < 400; i++) {
    last = await lines(t, text);
    if (last.filter((l) => line.test(l)).length >= count) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`expected ${count} history lines from "${text}", got ${JSON.stringify(last)}`);
}

describe("history and status commands", () => {
  it("lists a target's operations newest first, with who ran them and how each ended", async () => {
    const gated = createGatedExecutor();
    current = await startTestRuntime({ executor: gated.executor });
    const t = current;

    const empty = await t.runtime.handle(chatCommand("/history api staging"));
    expect(empty.card?.title).toBe("History of api in staging");
    expect(empty.card?.lines).toEqual(["No operations recorded yet."]);

    const run = async (text: string, end: "finish" | "fail", phase: string) => {
      const reply = await t.runtime.handle(chatCommand(text));
      const jobId = reply.jobIds[0] as string;
      const calls = await gated.started(gated.calls.length + 1);
      const call = calls[calls.length - 1];
      if (end === "finish") call?.finish();
      else call?.fail(new Error("rollout stuck: 0/2 available"));
      await t.waitForPhase(jobId, [phase], 20_000);
      return jobId;
    };
    const deployed = await run("/deploy api staging v2", "finish", "succeeded");
    const failed = await run("/deploy api staging v3", "fail", "failed");
    const scaled = await run("/scale api staging 3", "finish", "succeeded");

    const history = await historyOf(t, "/history api staging", 3);
    expect(history).toHaveLength(3);
    expect(history[0]).toMatch(line);
    expect(history[0]).toMatch(new RegExp(` · scale .*by demo · succeeded \\(${scaled}\\)$`));
    // It failed before reporting an image: the version that was asked for.
    expect(history[1]).toMatch(new RegExp(` · deploy v3 by demo · failed \\(${failed}\\)$`));
    expect(history[2]).toMatch(
      new RegExp(` · deploy ghcr\\.io/acme/api:v2 by demo · succeeded \\(${deployed}\\)$`),
    );

    // An entry written before missing images were left out (`image: false`) reads as no image.
    await t.runtime.redis.lpush(
      t.runtime.keys.history("api", "staging"),
      JSON.stringify({ jobId: "jold", kind: "rollback", phase: "failed", image: false, by: "sre-1", at: 0 }),
    );
    expect((await lines(t, "/history api staging"))[0]).toBe(
      "1970-01-01 00:00 UTC · rollback by sre-1 · failed (jold)",
    );

    // Another environment of the same service has its own history.
    expect(await lines(t, "/history api production", sreUser)).toEqual(["No operations recorded yet."]);
  });

  it("shows each environment's rollout and its last operations, and says when the cluster cannot be read", async () => {
    const gated = createGatedExecutor();
    const executor: ExecutorPort = {
      ...gated.executor,
      async status(target) {
        // What the Kubernetes executor throws when the API server cannot be reached.
        if (target.namespace === "production")
          throw toExecutorError(new Error("connect ECONNREFUSED 10.0.0.1:443"), { target, verb: "get" });
        return gated.executor.status(target);
      },
    };
    current = await startTestRuntime({ executor });
    const t = current;
    const reply = await t.runtime.handle(chatCommand("/deploy api staging v2"));
    (await gated.started(1))[0]?.finish();
    await t.waitForPhase(reply.jobIds[0] as string, ["succeeded"]);

    let status: string[] = [];
    for (let i = 0; i < 400; i++) {
      status = await lines(t, "/status api", sreUser);
      if (status.some((l) => l.startsWith("  ") && line.test(l.trim()))) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const staging = status.indexOf("staging: ghcr.io/acme/api:v2 · 2/2 available · revision 1 · rolled out");
    expect(staging).toBeGreaterThanOrEqual(0);
    expect(status[staging + 1]).toMatch(
      new RegExp(`^  .* UTC · deploy ghcr\\.io/acme/api:v2 by demo · succeeded \\(${reply.jobIds[0]}\\)$`),
    );
    const production = status.findIndex((l) => l.startsWith("production: "));
    expect(status[production]).toBe(
      "production: unknown (could not reach the Kubernetes API server (get deployments in production))",
    );
    expect(status[production + 1]).toBe("  no operations recorded yet");
  });
});
