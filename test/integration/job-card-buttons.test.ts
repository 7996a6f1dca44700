/**
 * The Roll back button of a deploy's job card, against real Redis and the real command path. A rollback
 * is `rollout undo`: it undoes whatever changed the target last, so the button must only act while the
 * card's deploy is still that change, and once however many copies of the card are clicked.
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { toAlertCardId } from "../../src/alerts/alert-keys.ts";
import { alertsConfigSchema } from "../../src/alerts/alerts-config.ts";
import { startAlertProcessor } from "../../src/alerts/start-alert-processor.ts";
import type { ChatAction } from "../../src/app/handle-action.ts";
import type { ChatUser, Conversation } from "../../src/core/model.ts";
import { chatCommand, demoUser, sreUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { quietLog, startTestRuntime, type TestRuntime, testConfig } from "../helpers/test-runtime.ts";

let t: TestRuntime | undefined;
let gated: ReturnType<typeof createGatedExecutor> | undefined;
afterEach(async () => {
  // A job left waiting at the gate would hold the worker's close.
  for (const call of gated?.calls ?? []) call.fail(new Error("test over"));
  await t?.close();
  t = undefined;
});

const teamsSre: ChatUser = {
  id: "teams:00000000-0000-0000-0000-0000000000a1",
  name: "sre-teams",
  groups: [],
};

function rollBack(
  runtime: TestRuntime,
  jobId: string,
  user: ChatUser = demoUser,
  conversation: Conversation = { platform: "shell", channel: "test" },
) {
  const action: ChatAction = {
    id: `click-${Math.random()}`,
    user,
    conversation,
    action: "rollback",
    value: jobId,
    receivedAt: Date.now(),
  };
  return runtime.runtime.handleAction(action);
}

const alerts = alertsConfigSchema.parse({ default: [{ platform: "shell", channel: "alerts" }] });

async function start() {
  gated = createGatedExecutor();
  t = await startTestRuntime({ executor: gated.executor, config: Object.assign(testConfig(), { alerts }) });
  return { gated, t };
}

/** Runs a command to its end and returns its job id. */
async function run(
  runtime: TestRuntime,
  gated: ReturnType<typeof createGatedExecutor>,
  text: string,
): Promise<string> {
  const reply = await runtime.runtime.handle(chatCommand(text));
  expect(reply.error?.message).toBeUndefined();
  const jobId = reply.jobIds[0] as string;
  const count = gated.calls.length + 1;
  (await gated.started(count))[count - 1]?.finish();
  await runtime.waitForPhase(jobId, ["succeeded"]);
  return jobId;
}

describe("the Roll back button of a deploy's card", () => {
  it("refuses on the card of a deploy that a newer deploy replaced: it would undo the newer one", async () => {
    const { gated, t } = await start();
    const v2 = await run(t, gated, "/deploy api staging v2");
    await run(t, gated, "/deploy api staging v3");

    const stale = await rollBack(t, v2);
    expect(stale.ok).toBe(false);
    expect(stale.error?.code).toBe("conflict");
    expect(stale.card?.title).toBe(
      "api/staging changed after this deploy: deploy ghcr.io/acme/api:v3 by demo; Roll back here would undo that, so nothing was done (run `rollback api staging` to undo the newest change)",
    );
    expect(stale.jobIds).toEqual([]);
    await new Promise((r) => setTimeout(r, 200));
    expect(gated.calls.map((c) => c.kind)).toEqual(["deploy", "deploy"]);
  });

  it("makes one rollback when the card is clicked in Slack and in Teams, and refuses once it has rolled back", async () => {
    const { gated, t } = await start();
    await run(t, gated, "/deploy api staging v2");
    const v3 = await run(t, gated, "/deploy api staging v3");

    const first = await rollBack(t, v3, sreUser, { platform: "slack", channel: "C0DEPLOYS" });
    expect(first.error?.message).toBeUndefined();
    expect(first.jobIds).toHaveLength(1);
    // The same card mirrored into Teams, clicked a moment later: a second rollback would undo the first.
    const second = await rollBack(t, v3, teamsSre, { platform: "teams", channel: "19:deploys@thread.tacv2" });
    expect(second.ok).toBe(true);
    expect(second.jobIds).toEqual(first.jobIds);
    expect(second.card?.title).toBe(
      `api/staging is already being rolled back (${first.jobIds[0]}) by sre-1, where its card is; nothing more was queued`,
    );

    const calls = await gated.started(3);
    expect(calls[2]?.kind).toBe("rollback");
    calls[2]?.finish();
    await t.waitForPhase(first.jobIds[0] as string, ["succeeded"]);
    // The card still shows the button; a click now would bring v3 back.
    const late = await rollBack(t, v3, teamsSre, { platform: "teams", channel: "19:deploys@thread.tacv2" });
    expect(late.error?.code).toBe("conflict");
    expect(late.card?.title).toBe(
      "api/staging was already rolled back to ghcr.io/acme/api:v3 by sre-1 after this deploy; nothing was done (run `rollback api staging` to roll back further)",
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(gated.calls.map((c) => c.kind)).toEqual(["deploy", "deploy", "rollback"]);
  });

  it("refuses a value that names no deploy: a rollback's own job is not undone from a forged button", async () => {
    const { gated, t } = await start();
    await run(t, gated, "/deploy api staging v2");
    const rollback = await run(t, gated, "/rollback api staging");
    const forged = await rollBack(t, rollback);
    expect(forged.error?.code).toBe("usage");
    expect(forged.jobIds).toEqual([]);
    await new Promise((r) => setTimeout(r, 200));
    expect(gated.calls.map((c) => c.kind)).toEqual(["deploy", "rollback"]);
  });

  it("makes one rollback when the deploy's card and an alert card pointing at that deploy are both clicked", async () => {
    const { gated, t } = await start();
    await run(t, gated, "/deploy api staging v2");
    const v3 = await run(t, gated, "/deploy api staging v3");
    const processor = startAlertProcessor({
      redis: t.runtime.redis,
      keys: t.runtime.keys,
      config: alerts,
      log: quietLog,
    });
    const labels = { alertname: "HighErrorRate", severity: "critical", service: "api", env: "staging" };
    const groupKey = `{}:{alertname="HighErrorRate-${randomBytes(3).toString("hex")}"}`;
    await processor.process({
      version: "4",
      groupKey,
      truncatedAlerts: 0,
      status: "firing",
      receiver: "shipbot",
      groupLabels: { alertname: "HighErrorRate" },
      commonLabels: labels,
      commonAnnotations: {},
      externalURL: "http://alertmanager.local",
      alerts: [
        {
          status: "firing",
          labels,
          annotations: {},
          startsAt: new Date().toISOString(),
          endsAt: "0001-01-01T00:00:00Z",
          generatorURL: "",
          fingerprint: randomBytes(8).toString("hex"),
        },
      ],
    });
    await processor.close();

    // On-call clicks the alert, the deployer clicks their deploy's card: one rollback, not two.
    const fromAlert = await t.runtime.handleAction({
      id: "click-alert",
      user: sreUser,
      conversation: { platform: "shell", channel: "alerts" },
      action: "alert-rollback",
      value: toAlertCardId(groupKey, "shell", "alerts"),
      receivedAt: Date.now(),
    });
    expect(fromAlert.error?.message).toBeUndefined();
    expect(fromAlert.jobIds).toHaveLength(1);
    const fromCard = await rollBack(t, v3);
    expect(fromCard.jobIds).toEqual(fromAlert.jobIds);
    await gated.started(3);
    await new Promise((r) => setTimeout(r, 200));
    expect(gated.calls.map((c) => c.kind)).toEqual(["deploy", "deploy", "rollback"]);
  });
});
