import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Runtime } from "../../src/bin/create-runtime.ts";
import type { Config } from "../../src/core/config.ts";
import { type JobState, terminalPhases } from "../../src/core/model.ts";
import type { KubeEmulator } from "../emulators/kubernetes/server.ts";
import { type CliStack, startCliStack, waitUntil } from "../helpers/cli-stack.ts";
import { chatCommand, demoUser } from "../helpers/example-config.ts";
import type { ShipbotProcess } from "../helpers/spawn-shipbot.ts";
import { redisUrl } from "../helpers/test-runtime.ts";

let stack: CliStack;
let emulator: KubeEmulator;
let config: Config;
let producer: Runtime;

beforeEach(async () => {
  stack = await startCliStack({
    emulator: {
      deployments: ["api", "web"].map((name) => ({
        namespace: "staging",
        name,
        image: `ghcr.io/acme/${name}:v1.0.0`,
        previousImages: [`ghcr.io/acme/${name}:v0.9.0`],
        // Six replicas 400 ms apart leave the first test about two seconds to catch api mid-rollout.
        replicas: name === "api" ? 6 : 3,
      })),
      stepMs: 400,
    },
  });
  ({ emulator, config, producer } = stack);
});

afterEach(async () => {
  await stack.close();
});

function start(args: string[]): ShipbotProcess {
  return stack.start(args);
}

function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  return waitUntil(what, probe, timeoutMs);
}

async function enqueue(text: string): Promise<string> {
  const reply = await producer.handle(chatCommand(text, demoUser));
  expect(reply.error?.message).toBeUndefined();
  return reply.jobIds[0] as string;
}

const finalState = (jobId: string) => () =>
  producer.status.read(jobId).then((s) => (s && terminalPhases.has(s.phase) ? s : undefined));

describe("worker processes", () => {
  it("finishes a job whose worker was killed mid-rollout exactly once, on another worker", async () => {
    const first = start(["worker"]);
    const jobId = await enqueue("/deploy api staging v2");
    // Under way and not finished: the controller has seen the change (the first progress state may still
    // carry the old ReplicaSet's counts, so the text must show the new one's) and some, not all, replicas
    // are updated.
    await waitFor("the rollout to be under way", async () => {
      const s = await producer.status.read(jobId);
      const updated = s?.progress?.updated ?? 0;
      const desired = s?.progress?.desired ?? 0;
      return s?.phase === "progress" && / updated /.test(s.text) && updated >= 1 && updated < desired
        ? s
        : undefined;
    });
    expect(emulator.writes("staging", "api")).toBe(1);
    first.child.kill("SIGKILL");
    await first.exited;

    start(["worker"]);
    const done: JobState = await waitFor("the job to end", finalState(jobId));
    expect(done.phase).toBe("succeeded");
    expect(done.text).toMatch(
      /^Deployed ghcr\.io\/acme\/api:v2 in \d+s \(finished after a worker restart; applied once\)$/,
    );
    expect(emulator.writes("staging", "api")).toBe(1);
    expect(emulator.deployment("staging", "api").spec.template.spec.containers[0].image).toBe(
      "ghcr.io/acme/api:v2",
    );
  });

  it("with two workers and a separate notifier, runs every job once and leaves every card final", async () => {
    start(["worker", "--no-cards"]);
    start(["worker", "--no-cards"]);
    const notifier = start(["worker", "--no-jobs"]);
    const texts = [
      "/deploy api staging v2",
      "/deploy web staging v2",
      "/scale api staging 4",
      "/deploy web staging v3",
      "/rollback api staging",
      "/scale web staging 2",
    ];
    const jobIds: string[] = [];
    for (const text of texts) jobIds.push(await enqueue(text));

    const states = await Promise.all(jobIds.map((id) => waitFor(`job ${id}`, finalState(id), 60_000)));
    // Nothing in these commands can be superseded or refused: each must have run, once. Rollbacks
    // go first, so the order among a target's jobs may differ from the order typed.
    expect(states.map((s) => `${s.phase}: ${s.text}`)).toEqual(
      texts.map(() => expect.stringMatching(/^succeeded: /)),
    );
    // Writes the cluster saw: a deploy or rollback patches once; a scale records its job on the
    // Deployment, then patches the scale subresource.
    expect(emulator.writes("staging", "api")).toBe(1 + 2 + 1);
    expect(emulator.writes("staging", "web")).toBe(1 + 1 + 2);

    // The notifier rendered each job's final state (the card's stored sequence equals the state's).
    const redis = new Redis(redisUrl);
    try {
      await waitFor("every card to show its final state", async () => {
        for (const s of states) {
          const ref = await redis.get(`${config.redisPrefix}:{notify}:card:${s.jobId}`);
          if (!ref || (JSON.parse(ref) as { seq: number }).seq < s.seq) return undefined;
        }
        return true;
      });
    } finally {
      await redis.quit();
    }
    for (const s of states) expect(notifier.output()).toContain(`job ${s.jobId} · requested by demo`);
    expect(notifier.output().match(/✅/g)?.length).toBe(texts.length);
  });
});
