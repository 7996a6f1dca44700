import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { noopExecutor } from "../../bench/bench-config.ts";
import type { Card } from "../../src/core/card.ts";
import type { Config } from "../../src/core/config.ts";
import { ShipbotError } from "../../src/core/errors.ts";
import type { ExecutorPort } from "../../src/executors/port.ts";
import { createBatchCardSource } from "../../src/notify/create-batch-card-source.ts";
import { createBatchId } from "../../src/queue/job-id.ts";
import { chatCommand, demoUser, sreUser } from "../helpers/example-config.ts";
import { startTestRuntime, type TestRuntime, testConfig } from "../helpers/test-runtime.ts";

let current: TestRuntime | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

/** The example config plus `count` services in staging, one service only in production, and a team role. */
function fanOutConfig(count: number): Config {
  const config = testConfig();
  const services = { ...config.services };
  for (let i = 0; i < count; i++) {
    services[`svc-${i}`] = {
      image: `registry.local/acme/svc-${i}`,
      replicas: { min: 0, max: 5 },
      environments: { staging: { namespace: "staging" } },
    };
  }
  services.ledger = {
    image: "registry.local/acme/ledger",
    replicas: { min: 1, max: 5 },
    environments: { production: { namespace: "production" } },
  };
  return {
    ...config,
    services,
    roles: {
      ...config.roles,
      // May operate web and svc-0 in staging only.
      "web-team": {
        permissions: ["read", "deploy", "rollback"],
        environments: ["staging"],
        services: ["web", "svc-0"],
        users: ["shell:webdev"],
        groups: [],
      },
    },
  };
}

const webdev = { id: "shell:webdev", name: "webdev", groups: [] };

/** Succeeds at once, except for the deployments named in `failing`, which fail for good. */
function executorFailing(failing: Set<string>): ExecutorPort {
  const base = noopExecutor();
  return {
    ...base,
    async deploy(target, image, ctx) {
      if (failing.has(target.deployment))
        throw new ShipbotError("conflict", `image ${image} was not found in the registry`);
      return base.deploy(target, image, ctx);
    },
  };
}

/** Waits until the chat holds a card whose latest version says `text`. */
async function waitForCard(t: TestRuntime, text: string, timeoutMs = 20_000): Promise<Card[]> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const latest = [...t.chat.cards.values()].map((c) => c.versions.at(-1) as Card);
    if (latest.some((card) => card.lines.join("\n").includes(text))) return latest;
    await sleep(25);
  }
  throw new Error(`no card says "${text}"; chat log: ${t.chat.log.slice(-5).join(" | ")}`);
}

describe("fan-out: one command, many targets (real Redis, real BullMQ)", () => {
  it("queues N jobs once for a command delivered twice, and keeps one card that ends with the failures listed", async () => {
    const count = 12;
    current = await startTestRuntime({
      executor: executorFailing(new Set(["svc-3", "svc-7"])),
      config: fanOutConfig(count),
    });
    const t = current;
    const names = Array.from({ length: count }, (_, i) => `svc-${i}`).join(",");
    const first = await t.runtime.handle(chatCommand(`deploy ${names} staging v2`, demoUser, "evt-fan-1"));
    expect(first.error?.message).toBeUndefined();
    expect(first.jobIds).toHaveLength(count);
    expect(new Set(first.jobIds).size).toBe(count);
    const again = await t.runtime.handle(chatCommand(`deploy ${names} staging v2`, demoUser, "evt-fan-1"));
    expect(again.jobIds).toEqual(first.jobIds);

    for (const jobId of first.jobIds) await t.waitForPhase(jobId, ["succeeded", "failed"]);
    const cards = await waitForCard(t, `10/${count} done, 2 failed`);
    const counts = await t.runtime.ops.queue.getJobCounts(
      "completed",
      "failed",
      "waiting",
      "delayed",
      "active",
    );
    expect(counts).toMatchObject({ completed: 10, failed: 2, waiting: 0, delayed: 0, active: 0 });

    // One message for the whole batch, posted once and edited in place; no card per job.
    expect(t.chat.cards.size).toBe(1);
    expect(t.chat.log.filter((line) => line.startsWith("post"))).toHaveLength(1);
    const [card] = cards;
    expect(card?.title).toBe(`🚀 deploy v2 to ${count} services in staging`);
    expect(card?.tone).toBe("failure");
    expect(card?.lines).toContain(
      "❌ svc-3: image registry.local/acme/svc-3:v2 was not found in the registry",
    );
    expect(card?.lines).toContain(
      "❌ svc-7: image registry.local/acme/svc-7:v2 was not found in the registry",
    );
    expect(card?.footer).toBe(`batch ${createBatchId("shell", "evt-fan-1")} · requested by demo`);
  });

  it("rolls back exactly the services configured in the environment with `*`, in one card that ends N/N done", async () => {
    current = await startTestRuntime({ executor: noopExecutor(), config: fanOutConfig(5) });
    const t = current;
    const reply = await t.runtime.handle(chatCommand("rollback * staging", demoUser));
    expect(reply.error?.message).toBeUndefined();
    const jobs = await Promise.all(reply.jobIds.map((id) => t.waitForPhase(id, ["succeeded"])));
    // api, web and svc-0…svc-4 run in staging; ledger runs in production only.
    expect(jobs.map((j) => j.data.service).sort()).toEqual(
      ["api", "svc-0", "svc-1", "svc-2", "svc-3", "svc-4", "web"].sort(),
    );
    expect(jobs.every((j) => j.data.kind === "rollback" && j.data.env === "staging")).toBe(true);
    const [card] = await waitForCard(t, "7/7 done");
    expect(t.chat.cards.size).toBe(1);
    expect(card?.title).toBe("↩ rollback 7 services in staging");
    expect(card?.tone).toBe("success");
    expect(card?.lines[0]).toBe("✅ 7/7 done");
  });

  it("keeps `*` to the services the user may operate, and refuses a list naming one they may not", async () => {
    current = await startTestRuntime({
      executor: noopExecutor(),
      config: fanOutConfig(3),
      work: false,
      notify: false,
    });
    const t = current;
    const star = await t.runtime.handle(chatCommand("deploy * staging v3 --dry-run", webdev));
    expect(star.ok).toBe(true);
    expect(star.card?.lines[0]).toBe("🚀 deploy v3 to 2 services in staging");
    // What `*` left out is said, not silently dropped: in the preview and on the batch's card.
    expect(star.card?.lines.at(-1)).toBe("Left out: 3 you may not operate (api, svc-1, svc-2)");
    const command = chatCommand("deploy * staging v3", webdev);
    const queued = await t.runtime.handle(command);
    expect(queued.jobIds).toHaveLength(2);
    const batch = await createBatchCardSource({ redis: t.runtime.redis, keys: t.runtime.keys }).load(
      createBatchId("shell", command.id),
    );
    expect(batch && "card" in batch ? batch.card.lines : []).toContain(
      "Left out: 3 services of staging you may not deploy (api, svc-1, svc-2)",
    );
    await t.runtime.ops.queue.obliterate({ force: true });

    const denied = await t.runtime.handle(chatCommand("rollback web,api,svc-1 staging", webdev));
    expect(denied.error?.code).toBe("forbidden");
    expect(denied.error?.message).toBe(
      "not allowed: rollback api, svc-1 in staging needs role `deployer` or `sre`; you hold `web-team`",
    );
    expect(denied.jobIds).toEqual([]);
    expect(await t.runtime.ops.queue.count()).toBe(0);

    const production = await t.runtime.handle(chatCommand("deploy api,web production v3", demoUser));
    expect(production.error?.code).toBe("forbidden");
    expect(production.error?.message).toMatch(/^not allowed: deploy api, web in production needs role `sre`/);
  });

  it("answers unknown names with suggestions and refuses a service that does not run there", async () => {
    current = await startTestRuntime({
      executor: noopExecutor(),
      config: fanOutConfig(3),
      work: false,
      notify: false,
    });
    const t = current;
    const unknown = await t.runtime.handle(chatCommand("deploy api,wbe,svc-9 staging v2", demoUser));
    expect(unknown.error?.code).toBe("usage");
    expect(unknown.error?.message).toMatch(
      /^no service `wbe`; did you mean `web`\?; no service `svc-9`; did you mean `svc-0`\?/,
    );
    const elsewhere = await t.runtime.handle(chatCommand("deploy api,ledger staging v2", sreUser));
    expect(elsewhere.error?.message).toBe(
      "service `ledger` does not run in `staging`; it runs in: production",
    );
    const empty = await t.runtime.handle(chatCommand("deploy api,,web staging v2", demoUser));
    expect(empty.error?.message).toBe("`api,,web` is not a valid service: the list has an empty name");
    const revision = await t.runtime.handle(chatCommand("rollback api,web staging 3", demoUser));
    expect(revision.error?.code).toBe("usage");
    expect(await t.runtime.ops.queue.count()).toBe(0);
  });

  it("previews a big fan-out as a summary and its first targets", async () => {
    current = await startTestRuntime({
      executor: noopExecutor(),
      config: fanOutConfig(60),
      work: false,
      notify: false,
    });
    const t = current;
    const reply = await t.runtime.handle(chatCommand("deploy * staging v4 --dry-run", demoUser));
    expect(reply.ok).toBe(true);
    const lines = reply.card?.lines ?? [];
    expect(lines[0]).toBe("🚀 deploy v4 to 62 services in staging");
    expect(lines).toHaveLength(22);
    expect(lines.at(-1)).toBe("… and 42 more");
    expect(await t.runtime.ops.queue.count()).toBe(0);
  });
});
