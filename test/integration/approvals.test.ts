import { afterEach, describe, expect, it } from "vitest";
import type { ChatUser } from "../../src/core/model.ts";
import { chatCommand, demoUser, sre } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { startTestRuntime, type TestRuntime } from "../helpers/test-runtime.ts";

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

async function start() {
  const gated = createGatedExecutor();
  t = await startTestRuntime({ executor: gated.executor });
  return { gated, t };
}

function click(runtime: TestRuntime, user: ChatUser, action: "approve" | "reject", jobId: string) {
  return runtime.runtime.handleAction({
    id: `click-${Math.random()}`,
    user,
    conversation: { platform: "shell", channel: "test" },
    action,
    value: jobId,
    receivedAt: Date.now(),
  });
}

async function request(
  runtime: TestRuntime,
  text = "/deploy api production v2",
  user = sre(1),
): Promise<string> {
  const reply = await runtime.runtime.handle(chatCommand(text, user));
  expect(reply.error?.message).toBeUndefined();
  return reply.jobIds[0] as string;
}

describe("approvals (production needs two approvals from sre, not the requester)", () => {
  it("runs the deploy once, after two different eligible people approve", async () => {
    const { gated, t } = await start();
    const jobId = await request(t);
    const pending = await t.waitForPhase(jobId, ["pending-approval"]);
    expect(pending.text).toMatch(/^Needs 2 approvals from sre \(not sre-1\) · expires \d{2}:\d{2} UTC$/);

    expect((await click(t, sre(1), "approve", jobId)).card?.title).toBe(
      "not allowed: you asked for this change; someone else must approve it",
    );
    expect((await click(t, demoUser, "approve", jobId)).card?.title).toBe(
      "not allowed: approving needs role `sre`; you hold `deployer`, `viewer`",
    );
    expect((await click(t, sre(2), "approve", jobId)).card?.title).toBe("Your approval counts: 1 of 2");
    expect((await click(t, sre(2), "approve", jobId)).card?.title).toBe(
      "you already approved this request; it needs someone else",
    );
    expect((await t.runtime.status.read(jobId))?.text).toBe("Approved by sre-2 · 1 of 2 · waiting for more");
    expect(gated.calls).toHaveLength(0);

    expect((await click(t, sre(3), "approve", jobId)).card?.title).toBe(
      `Approved by sre-2, sre-3: ${jobId} is queued`,
    );
    const [call] = await gated.started(1);
    expect(call?.arg).toBe("ghcr.io/acme/api:v2");
    call?.finish();
    const done = await t.waitForPhase(jobId, ["succeeded"]);
    expect(done.approvedBy).toBe("sre-2, sre-3");
    expect((await click(t, sre(4), "approve", jobId)).card?.title).toBe(
      "this request is already succeeded; nothing changed",
    );
    expect(gated.calls).toHaveLength(1);
  });

  it("counts two approvals that race once each, and queues the job exactly once", async () => {
    const { gated, t } = await start();
    const jobId = await request(t);
    await t.waitForPhase(jobId, ["pending-approval"]);
    const replies = await Promise.all([
      click(t, sre(2), "approve", jobId),
      click(t, sre(3), "approve", jobId),
    ]);
    const titles = replies.map((r) => r.card?.title ?? "");
    expect(titles.filter((title) => title.startsWith("Approved by")).length).toBe(1);
    expect(titles.filter((title) => title === "Your approval counts: 1 of 2").length).toBe(1);
    const [call] = await gated.started(1);
    call?.finish();
    await t.waitForPhase(jobId, ["succeeded"]);
    await new Promise((r) => setTimeout(r, 300));
    expect(gated.calls).toHaveLength(1);
  });

  it("ends at the first rejection; later approvals change nothing", async () => {
    const { gated, t } = await start();
    const jobId = await request(t);
    await t.waitForPhase(jobId, ["pending-approval"]);
    expect((await click(t, sre(2), "reject", jobId)).card?.title).toBe(`Rejected ${jobId}; nothing will run`);
    expect((await t.waitForPhase(jobId, ["cancelled"])).text).toBe("Rejected by sre-2; nothing ran");
    expect((await click(t, sre(3), "approve", jobId)).card?.title).toBe(
      "this request is already cancelled; nothing changed",
    );
    expect(gated.calls).toHaveLength(0);
  });

  it("expires an undecided request: its card says so and nothing runs", async () => {
    const { gated, t } = await start();
    const jobId = await request(t);
    await t.waitForPhase(jobId, ["pending-approval"]);
    // Let the deadline pass without waiting half an hour.
    const past = Date.now() - 1;
    await t.runtime.redis.hset(t.runtime.keys.job(jobId), "expiresAt", String(past));
    await t.runtime.redis.zadd(t.runtime.keys.approvals, past, jobId);
    const expired = await t.waitForPhase(jobId, ["cancelled"], 10_000);
    expect(expired.text).toBe("Expired: nobody decided in time; nothing ran");
    expect((await click(t, sre(2), "approve", jobId)).card?.title).toBe(
      "this request is already cancelled; nothing changed",
    );
    expect(gated.calls).toHaveLength(0);
  });

  it("voids the approvals of an older request when a newer change to the same target is requested", async () => {
    const { t } = await start();
    const older = await request(t, "/deploy api production v2");
    await t.waitForPhase(older, ["pending-approval"]);
    await click(t, sre(2), "approve", older);
    const newer = await request(t, "/deploy api production v3");
    expect((await t.waitForPhase(older, ["superseded"])).text).toBe(
      `Superseded by a newer request (${newer}); its approvals no longer count`,
    );
    const fresh = await t.waitForPhase(newer, ["pending-approval"]);
    expect(fresh.approvedBy).toBeUndefined();
    expect((await click(t, sre(3), "approve", older)).card?.title).toBe(
      "this request is already superseded; nothing changed",
    );
  });

  it("voids only an older deploy request: a scale or rollback request waiting for approval stands", async () => {
    const { gated, t } = await start();
    const production = t.config.environments.production;
    if (!production?.approval) throw new Error("example config has no production approval");
    // Rollbacks need approval here too, so a rollback request can wait beside the deploys.
    t.config.environments.production = {
      ...production,
      approval: { ...production.approval, rollbacks: "require" },
    };
    const deploy = await request(t, "/deploy api production v2");
    await t.waitForPhase(deploy, ["pending-approval"]);
    const scale = await request(t, "/scale api production 4");
    await t.waitForPhase(scale, ["pending-approval"]);
    const rollback = await request(t, "/rollback api production");
    await t.waitForPhase(rollback, ["pending-approval"]);
    await click(t, sre(2), "approve", scale);

    const newer = await request(t, "/deploy api production v3");
    // The newer deploy voids the older deploy, even with other requests made in between...
    expect((await t.waitForPhase(deploy, ["superseded"])).text).toBe(
      `Superseded by a newer request (${newer}); its approvals no longer count`,
    );
    await t.waitForPhase(newer, ["pending-approval"]);
    // ...and never a scale or a rollback: those keep waiting, with the approvals they have.
    expect((await t.runtime.status.read(scale))?.phase).toBe("pending-approval");
    expect((await t.runtime.status.read(scale))?.text).toBe("Approved by sre-2 · 1 of 2 · waiting for more");
    expect((await t.runtime.status.read(rollback))?.phase).toBe("pending-approval");
    expect((await click(t, sre(3), "approve", scale)).card?.title).toBe(
      `Approved by sre-2, sre-3: ${scale} is queued`,
    );
    const [call] = await gated.started(1);
    expect(call?.kind).toBe("scale");
    call?.finish();
    await t.waitForPhase(scale, ["succeeded"]);
  });

  it("lets the requester cancel a request that waits for approval", async () => {
    const { gated, t } = await start();
    const jobId = await request(t);
    await t.waitForPhase(jobId, ["pending-approval"]);
    // Someone who may not cancel in production is told which role could; the request stands.
    const refused = await t.runtime.handle(chatCommand(`/cancel ${jobId}`, demoUser));
    expect(refused.error?.code).toBe("forbidden");
    expect(refused.error?.message).toMatch(/^not allowed: cancel api in production needs role `sre`/);
    expect((await t.runtime.status.read(jobId))?.phase).toBe("pending-approval");
    const reply = await t.runtime.handle(chatCommand(`/cancel ${jobId}`, sre(1)));
    expect(reply.card?.title).toBe(`Cancelled request ${jobId}`);
    // A second cancel says it is over already.
    const again = await t.runtime.handle(chatCommand(`/cancel ${jobId}`, sre(1)));
    expect(again.error?.message).toBe(`job ${jobId} already ended (cancelled)`);
    // Someone who may not cancel there learns nothing about it.
    const stranger = await t.runtime.handle(chatCommand(`/cancel ${jobId}`, demoUser));
    expect(stranger.error?.message).toBe(`no job ${jobId}; it may have finished and been cleaned up`);
    expect((await t.waitForPhase(jobId, ["cancelled"])).text).toBe("Cancelled by sre-1; nothing ran");
    expect((await click(t, sre(2), "approve", jobId)).card?.title).toBe(
      "this request is already cancelled; nothing changed",
    );
    expect(gated.calls).toHaveLength(0);
  });

  it("refuses an approval that comes after the deadline, even before the sweep expired the request", async () => {
    const { gated, t } = await start();
    const jobId = await request(t);
    await t.waitForPhase(jobId, ["pending-approval"]);
    // The deadline passes; the click arrives before the next sweep.
    await t.runtime.redis.hset(t.runtime.keys.job(jobId), "expiresAt", String(Date.now() - 1));
    const late = await click(t, sre(2), "approve", jobId);
    expect(late.card?.title).toBe("this request expired before anyone decided; nothing ran");
    expect(late.error?.code).toBe("conflict");
    expect((await t.waitForPhase(jobId, ["cancelled"])).text).toBe(
      "Expired: nobody decided in time; nothing ran",
    );
    const ledger = await t.runtime.redis.xrange(t.runtime.keys.audit, "-", "+");
    const denied = ledger.filter(([, f]) => f.includes("approval.denied") && f.includes(jobId));
    expect(denied.map(([, f]) => f[f.indexOf("reason") + 1])).toEqual([
      "this request expired before anyone decided",
    ]);
    await new Promise((r) => setTimeout(r, 300));
    expect(gated.calls).toHaveLength(0);
  });

  it("tells approvers to run the command again when the configuration stopped requiring approval", async () => {
    const { gated, t } = await start();
    const jobId = await request(t);
    await t.waitForPhase(jobId, ["pending-approval"]);
    // A process started with the new configuration (a rolling update) takes the click.
    const production = t.config.environments.production;
    if (!production) throw new Error("example config has no production");
    const { approval: _dropped, ...noApproval } = production;
    const updated = await startTestRuntime({
      executor: gated.executor,
      config: { ...t.config, environments: { ...t.config.environments, production: noApproval } },
      work: false,
      notify: false,
    });
    try {
      const reply = await click(updated, sre(2), "approve", jobId);
      expect(reply.error?.code).toBe("conflict");
      expect(reply.card?.title).toBe(
        "api in production no longer needs approval, so this request cannot be decided: run the command again (this request expires on its own)",
      );
      expect((await t.runtime.status.read(jobId))?.phase).toBe("pending-approval");
      expect(gated.calls).toHaveLength(0);
    } finally {
      await updated.close();
    }
  });

  it("lets rollbacks skip approval, and staging needs none", async () => {
    const { gated, t } = await start();
    const rollback = await request(t, "/rollback api production");
    const staging = await request(t, "/deploy api staging v5", demoUser);
    await gated.started(2);
    for (const call of gated.calls) call.finish();
    await t.waitForPhase(rollback, ["succeeded"]);
    await t.waitForPhase(staging, ["succeeded"]);
  });
});
