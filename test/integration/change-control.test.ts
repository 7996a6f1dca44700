import { afterEach, describe, expect, it } from "vitest";
import { activeFreeze } from "../../src/core/freeze-windows.ts";
import { chatCommand, demoUser, loadExampleConfig, sreUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { startTestRuntime, type TestRuntime, testConfig } from "../helpers/test-runtime.ts";

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const someone = { id: "slack:U0DEMO0001", name: "dev-1", groups: [] };

describe("locks and freezes", () => {
  it("makes others' operations wait behind a lock, shows it, lets the holder deploy, and releases on unlock", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor });
    const locked = await t.runtime.handle(chatCommand("/lock api staging db migration running"));
    expect(locked.card?.title).toBe("🔒 Locked api in staging");

    const blocked = await t.runtime.handle(chatCommand("/deploy api staging v2", someone));
    const waiting = await t.waitForPhase(blocked.jobIds[0] as string, ["waiting"]);
    expect(waiting.text).toBe("Waiting · api/staging is locked by demo: db migration running");

    const queue = await t.runtime.handle(chatCommand("/queue staging"));
    expect(queue.card?.lines.join("\n")).toContain("🔒 api in staging locked by demo: db migration running");

    const own = await t.runtime.handle(chatCommand("/deploy api staging v3"));
    const [first] = await gated.started(1);
    expect(first?.arg).toBe("ghcr.io/acme/api:v3");
    first?.finish();
    await t.waitForPhase(own.jobIds[0] as string, ["succeeded"]);
    expect(gated.calls).toHaveLength(1);

    const refused = await t.runtime.handle(
      chatCommand("/unlock api staging", { id: "slack:U0NOBODY01", name: "x", groups: [] }),
    );
    expect(refused.error?.code).toBe("forbidden");
    await t.runtime.handle(chatCommand("/unlock api staging"));
    const [, second] = await gated.started(2);
    expect(second?.arg).toBe("ghcr.io/acme/api:v2");
    second?.finish();
    await t.waitForPhase(blocked.jobIds[0] as string, ["succeeded"]);
  });

  it("lets only rollbacks run in a frozen environment, until unfreeze", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor });
    const frozen = await t.runtime.handle(chatCommand("/freeze staging 2h release train", sreUser));
    expect(frozen.card?.title).toMatch(
      /^🧊 Froze staging by sre-1 until \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC: release train$/,
    );
    const deploy = await t.runtime.handle(chatCommand("/deploy api staging v2"));
    expect((await t.waitForPhase(deploy.jobIds[0] as string, ["waiting"])).text).toBe(
      "Waiting · staging is frozen by sre-1: release train",
    );
    const rollback = await t.runtime.handle(chatCommand("/rollback web staging"));
    const [call] = await gated.started(1);
    expect(call?.kind).toBe("rollback");
    call?.finish();
    await t.waitForPhase(rollback.jobIds[0] as string, ["succeeded"]);
    await t.runtime.handle(chatCommand("/unfreeze staging", sreUser));
    const [, next] = await gated.started(2);
    expect(next?.kind).toBe("deploy");
    next?.finish();
    await t.waitForPhase(deploy.jobIds[0] as string, ["succeeded"]);
  });

  it("makes a service×environment in incident mode rollback-only until the incident clears", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor });
    const incident = {
      alert: "HighErrorRate",
      since: Date.now(),
      sinceText: "14:02",
      severity: "critical",
      fingerprint: "f1",
    };
    await t.runtime.redis.hset(t.runtime.keys.incidents, "api:staging", JSON.stringify(incident));
    const deploy = await t.runtime.handle(chatCommand("/deploy api staging v2"));
    const waiting = await t.waitForPhase(deploy.jobIds[0] as string, ["waiting"]);
    expect(waiting.text).toBe(
      "Waiting · api/staging is in incident mode (HighErrorRate since 14:02): only rollbacks run",
    );
    const rollback = await t.runtime.handle(chatCommand("/rollback api staging"));
    const [call] = await gated.started(1);
    expect(call?.kind).toBe("rollback");
    call?.finish();
    await t.waitForPhase(rollback.jobIds[0] as string, ["succeeded"]);
    await t.runtime.redis.hdel(t.runtime.keys.incidents, "api:staging");
    const [, next] = await gated.started(2);
    expect(next?.kind).toBe("deploy");
    next?.finish();
    await t.waitForPhase(deploy.jobIds[0] as string, ["succeeded"]);
  });

  it("refuses a freeze that ends in the past or a time it cannot read", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, work: false, notify: false });
    const past = await t.runtime.handle(chatCommand("/freeze staging 2020-01-01T00:00:00Z", sreUser));
    expect(past.error?.message).toBe(
      "`2020-01-01T00:00:00Z` is in the past; a freeze must end in the future",
    );
    const garbled = await t.runtime.handle(chatCommand("/freeze staging 99x", sreUser));
    expect(garbled.ok).toBe(true);
    const bad = await t.runtime.handle(chatCommand("/freeze staging 2026-13-40T99:00Z", sreUser));
    expect(bad.error?.message).toMatch(/is not a time: use 2h, 30m, 1d or an ISO time/);
    const denied = await t.runtime.handle(chatCommand("/freeze production 1h", demoUser));
    expect(denied.error?.message).toBe(
      "not allowed: freeze production needs role `sre`; you hold `deployer`, `viewer`",
    );
  });

  it("refuses deploys during a scheduled freeze window, across a time zone boundary", async () => {
    const base = testConfig();
    const config = {
      ...base,
      environments: {
        ...base.environments,
        production: {
          ...base.environments.production,
          freezes: [
            {
              name: "weekend",
              timezone: "Pacific/Auckland",
              days: ["sat" as const],
              start: "00:00",
              end: "23:59",
              reason: "no weekend deploys",
            },
          ],
        },
      },
    };
    // Friday 12:00 UTC is already Saturday 01:00 in Auckland (UTC+13 in November).
    const fridayNoonUtc = Date.parse("2026-11-27T12:00:00Z");
    expect(activeFreeze(config, "production", fridayNoonUtc)?.name).toBe("weekend");
    expect(activeFreeze(config, "production", Date.parse("2026-11-27T10:00:00Z"))).toBeUndefined();
    expect(activeFreeze(config, "staging", fridayNoonUtc)).toBeUndefined();
    const ends = activeFreeze(config, "production", fridayNoonUtc)?.endsAt ?? 0;
    expect(new Date(ends).toISOString()).toBe("2026-11-28T10:59:00.000Z");
    expect(loadExampleConfig().environments.production?.freezes).toEqual([]);
  });

  it("answers a deploy in a freeze window with the window and its end, and still takes rollbacks", async () => {
    const base = testConfig();
    const always = {
      name: "change freeze",
      timezone: "UTC",
      days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as Array<"mon">,
      start: "00:00",
      end: "23:59",
    };
    const config = { ...base, environments: { ...base.environments, production: { freezes: [always] } } };
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, config, work: false, notify: false });
    const deploy = await t.runtime.handle(chatCommand("/deploy api production v2", sreUser));
    expect(deploy.ok).toBe(false);
    expect(deploy.error?.message).toMatch(
      /^production is in the freeze window "change freeze" until \w{3} \d{2}:\d{2} UTC; only rollbacks run$/,
    );
    expect(deploy.jobIds).toEqual([]);
    const rollback = await t.runtime.handle(chatCommand("/rollback api production", sreUser));
    expect(rollback.jobIds).toHaveLength(1);
  });
});
