import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { type Config, configSchema } from "../../src/core/config.ts";
import { activeFreeze } from "../../src/core/freeze-windows.ts";
import { wakeJob } from "../../src/queue/ops-queue.ts";
import { chatCommand, demoUser, loadExampleConfig, sre, sreUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { startTestRuntime, type TestRuntime, testConfig } from "../helpers/test-runtime.ts";

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const someone = { id: "slack:U0DEMO0001", name: "dev-1", groups: [] };

/** Waits until the job is parked (delayed) for its next recheck, as a held job is between looks. */
async function parked(jobId: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await t?.runtime.ops.queue.getJob(jobId).then((j) => j?.isDelayed())) return;
    await sleep(25);
  }
  throw new Error(`job ${jobId} was not parked`);
}

describe("locks and freezes", () => {
  it("makes others' operations wait behind a lock, shows it, lets the holder deploy, and releases on unlock", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor });
    const locked = await t.runtime.handle(chatCommand("/lock api staging db migration running"));
    expect(locked.card?.title).toBe("🔒 Locked api in staging");

    // A scale: a deploy blocked here would be superseded by the holder's newer deploy below.
    const blocked = await t.runtime.handle(chatCommand("/scale api staging 3", someone));
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
    expect(second?.kind).toBe("scale");
    expect(second?.arg).toBe(3);
    second?.finish();
    await t.waitForPhase(blocked.jobIds[0] as string, ["succeeded"]);
  });

  describe("jobs held by a lock, once it lifts", () => {
    /** Held jobs look again only when woken, so the test decides whose recheck comes first. */
    const slowRecheck = () => testConfig({ recheckMs: 60_000 });
    const lockedText = "Waiting · api/staging is locked by demo: db migration running";
    async function held(text: string, user = someone): Promise<string> {
      const jobId = (await t?.runtime.handle(chatCommand(text, user)))?.jobIds[0] as string;
      expect((await t?.waitForPhase(jobId, ["waiting"]))?.text).toBe(lockedText);
      await parked(jobId);
      return jobId;
    }

    it("runs a held rollback before a deploy held with it, even when the deploy looks again first", async () => {
      const gated = createGatedExecutor();
      t = await startTestRuntime({ executor: gated.executor, config: slowRecheck() });
      await t.runtime.handle(chatCommand("/lock api staging db migration running"));
      const deploy = await held("/deploy api staging v2");
      const rollback = await held("/rollback api staging");

      await t.runtime.handle(chatCommand("/unlock api staging"));
      // The deploy's recheck falls due first after the unlock.
      await wakeJob(t.runtime.ops.queue, deploy);
      const [first] = await gated.started(1);
      expect(first?.kind).toBe("rollback");
      await sleep(300);
      expect(gated.calls).toHaveLength(1);
      first?.finish();
      await t.waitForPhase(rollback, ["succeeded"]);
      const [, second] = await gated.started(2);
      expect(second?.kind).toBe("deploy");
      second?.finish();
      await t.waitForPhase(deploy, ["succeeded"]);
    });

    it("lets the lock holder deploy past someone's held rollback, which runs as soon as the lock lifts", async () => {
      const gated = createGatedExecutor();
      t = await startTestRuntime({ executor: gated.executor, config: slowRecheck() });
      await t.runtime.handle(chatCommand("/lock api staging db migration running"));
      const rollback = await held("/rollback api staging");
      const own = (await t.runtime.handle(chatCommand("/deploy api staging v3"))).jobIds[0] as string;
      const [first] = await gated.started(1);
      expect(first?.kind).toBe("deploy");
      first?.finish();
      await t.waitForPhase(own, ["succeeded"]);
      expect((await t.runtime.status.read(rollback))?.text).toBe(lockedText);

      await t.runtime.handle(chatCommand("/unlock api staging"));
      const [, second] = await gated.started(2);
      expect(second?.kind).toBe("rollback");
      second?.finish();
      await t.waitForPhase(rollback, ["succeeded"]);
    });

    it("does not keep a deploy waiting for a held rollback that was cancelled", async () => {
      const gated = createGatedExecutor();
      t = await startTestRuntime({ executor: gated.executor, config: slowRecheck() });
      await t.runtime.handle(chatCommand("/lock api staging db migration running"));
      const rollback = await held("/rollback api staging");
      const deploy = await held("/deploy api staging v2");
      const cancelled = await t.runtime.handle(chatCommand(`/cancel ${rollback}`, someone));
      expect(cancelled.error?.message).toBeUndefined();
      await t.waitForPhase(rollback, ["cancelled"]);

      await t.runtime.handle(chatCommand("/unlock api staging"));
      const [first] = await gated.started(1);
      expect(first?.kind).toBe("deploy");
      first?.finish();
      await t.waitForPhase(deploy, ["succeeded"]);
      expect(gated.calls).toHaveLength(1);
    });
  });

  it("runs a deploy held by a freeze before a scale held with it once the freeze lapses, whichever looks again first", async () => {
    const gated = createGatedExecutor();
    // Nothing wakes jobs when a freeze ends by itself: they look again at their recheck, here when the test says.
    t = await startTestRuntime({ executor: gated.executor, config: testConfig({ recheckMs: 60_000 }) });
    const lapses = Date.now() + 1_500;
    const freeze = { by: "sre-1", byId: sreUser.id, reason: "release train", until: lapses, at: Date.now() };
    await t.runtime.redis.hset(t.runtime.keys.freezes, "staging", JSON.stringify(freeze));
    const jobs: string[] = [];
    for (const text of ["/deploy api staging v2", "/scale api staging 3"]) {
      const jobId = (await t.runtime.handle(chatCommand(text, someone))).jobIds[0] as string;
      expect((await t.waitForPhase(jobId, ["waiting"])).text).toBe(
        "Waiting · staging is frozen by sre-1: release train",
      );
      jobs.push(jobId);
    }
    const [deploy, scale] = jobs as [string, string];
    const queue = t.runtime.ops.queue;
    for (const jobId of jobs) await parked(jobId);
    await sleep(Math.max(0, lapses - Date.now()) + 100);

    // The scale looks again first: it waits for the deploy rather than running before it.
    await wakeJob(queue, scale);
    for (let i = 0; i < 400; i++) {
      if ((await t.runtime.status.read(scale))?.text.includes("position 1")) break;
      await sleep(25);
    }
    expect((await t.runtime.status.read(scale))?.text).toBe(
      `Waiting · position 1 for api/staging (behind ${deploy})`,
    );
    expect(gated.calls).toHaveLength(0);
    await wakeJob(queue, deploy);
    const [first] = await gated.started(1);
    expect(first?.kind).toBe("deploy");
    first?.finish();
    const [, second] = await gated.started(2);
    expect(second?.kind).toBe("scale");
    second?.finish();
    await t.waitForPhase(scale, ["succeeded"]);
  });

  it("refuses a lock of a target someone else holds, naming them and why, and records it refused; an unlock or unfreeze of nothing is answered plainly", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor });
    await t.runtime.handle(chatCommand("/lock api staging db migration running"));
    const second = await t.runtime.handle(chatCommand("/lock api staging hotfix", someone));
    // Refused like any other command (the piped demo counts it and exits non-zero).
    expect(second.ok).toBe(false);
    expect(second.error?.code).toBe("conflict");
    expect(second.card?.title).toBe(
      "api in staging is already locked by demo: db migration running; to take it over, `unlock api staging` first",
    );
    const [refusal] = await t.runtime.audit.recent(1);
    expect(refusal?.type).toBe("command.refused");
    expect(refusal?.fields).toMatchObject({
      actor: "slack:U0DEMO0001",
      code: "conflict",
      reason: second.error?.message,
    });
    // The holder's lock and reason stand.
    const queue = await t.runtime.handle(chatCommand("/queue staging"));
    expect(queue.card?.lines).toContain("🔒 api in staging locked by demo: db migration running");
    // The holder may lock again, with a new reason.
    const renewed = await t.runtime.handle(chatCommand("/lock api staging migration, part 2"));
    expect(renewed.card?.lines).toEqual([
      "Operations by others wait until `unlock api staging`. Reason: migration, part 2",
    ]);

    expect((await t.runtime.handle(chatCommand("/unlock web staging"))).card?.title).toBe(
      "web in staging was not locked",
    );
    expect((await t.runtime.handle(chatCommand("/unfreeze staging", sreUser))).card?.title).toBe(
      "staging was not frozen",
    );
    const ledger = await t.runtime.redis.xrange(t.runtime.keys.audit, "-", "+");
    const types = ledger.map(([, f]) => f[f.indexOf("type") + 1]);
    expect(types.filter((x) => x === "lock")).toHaveLength(2);
    expect(types.filter((x) => x === "unlock" || x === "unfreeze")).toHaveLength(0);

    // Someone else may lift the lock; the answer and the ledger say whose lock it was.
    const lifted = await t.runtime.handle(chatCommand("/unlock api staging", someone));
    expect(lifted.card?.title).toBe("🔓 Unlocked api in staging");
    expect(lifted.card?.lines).toEqual(["It was locked by demo: migration, part 2."]);
    const [, unlock] = (await t.runtime.redis.xrange(t.runtime.keys.audit, "-", "+")).at(-1) ?? [];
    expect(unlock?.[unlock.indexOf("type") + 1]).toBe("unlock");
    expect(unlock?.[unlock.indexOf("holder") + 1]).toBe("shell:demo");
    // Their own lock needs no such line.
    await t.runtime.handle(chatCommand("/lock api staging again"));
    expect((await t.runtime.handle(chatCommand("/unlock api staging"))).card?.lines).toEqual([]);
  });

  it("gives a target that two people lock at the same moment to one of them and refuses the other", async () => {
    t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
    const replies = await Promise.all([
      t.runtime.handle(chatCommand("/lock web staging mine")),
      t.runtime.handle(chatCommand("/lock web staging no, mine", someone)),
    ]);
    expect(replies.map((r) => r.ok).sort()).toEqual([false, true]);
    const winner = replies.find((r) => r.ok) === replies[0] ? "demo: mine" : "dev-1: no, mine";
    const queue = await t.runtime.handle(chatCommand("/queue staging"));
    expect(queue.card?.lines).toContain(`🔒 web in staging locked by ${winner}`);
  });

  it("lets someone else's freeze be extended but not shortened, and names whose freeze was replaced or ended", async () => {
    t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
    const sre2 = sre(2);
    await t.runtime.handle(chatCommand("/freeze staging release train", sreUser));
    // An indefinite freeze cannot be shortened to an hour by someone else freezing again.
    const shorter = await t.runtime.handle(chatCommand("/freeze staging 1h hotfix window", sre2));
    expect(shorter.ok).toBe(false);
    expect(shorter.error?.message).toBe(
      "staging is already frozen by sre-1 with no end: release train; a freeze can be extended, not shortened: `unfreeze staging` first",
    );
    expect((await t.runtime.audit.recent(1))[0]?.type).toBe("command.refused");
    let queue = await t.runtime.handle(chatCommand("/queue staging"));
    expect(queue.card?.lines).toContain("🧊 staging frozen by sre-1: release train");

    // Its holder may shorten their own.
    const own = await t.runtime.handle(chatCommand("/freeze staging 2h release train", sreUser));
    expect(own.card?.lines).toEqual(["Deploys and scaling wait; rollbacks still run."]);
    const ownEnd = (await t.runtime.audit.recent(1))[0]?.fields.until;

    // Someone else may extend it: the answer and the ledger name the freeze it replaced and its end.
    const longer = await t.runtime.handle(chatCommand("/freeze staging 1d payments migration", sre2));
    expect(longer.card?.title).toMatch(/^🧊 Froze staging by sre-2 until .* UTC: payments migration$/);
    expect(longer.card?.lines).toEqual([
      expect.stringMatching(
        /^It replaces the freeze by sre-1 until \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC: release train\.$/,
      ),
      "Deploys and scaling wait; rollbacks still run.",
    ]);
    const [freeze] = await t.runtime.audit.recent(1);
    expect(freeze?.type).toBe("freeze");
    expect(freeze?.fields).toMatchObject({
      actor: sre2.id,
      replaced: sreUser.id,
      replacedUntil: ownEnd,
      replacedReason: "release train",
    });

    // Ending someone else's freeze says whose it was, as unlock does for a lock.
    const ended = await t.runtime.handle(chatCommand("/unfreeze staging", sreUser));
    expect(ended.card?.lines).toEqual([
      expect.stringMatching(/^It was frozen by sre-2 until .* UTC: payments migration\.$/),
    ]);
    const [unfreeze] = await t.runtime.audit.recent(1);
    expect(unfreeze?.fields).toMatchObject({ actor: sreUser.id, holder: sre2.id });
    queue = await t.runtime.handle(chatCommand("/queue staging"));
    expect(queue.card?.lines.some((l) => l.startsWith("🧊"))).toBe(false);
  });

  it("lists under `queue <env>` the locks and freezes of that environment only, whatever their reasons say", async () => {
    t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
    await t.runtime.handle(chatCommand("/lock api production waiting for the staging soak", sreUser));
    await t.runtime.handle(chatCommand("/freeze production 2h until staging is green", sreUser));
    await t.runtime.handle(chatCommand("/lock web staging schema change"));
    const holds = async (env: string) =>
      ((await t?.runtime.handle(chatCommand(`/queue ${env}`)))?.card?.lines ?? []).filter((l) =>
        /^(🔒|🧊)/u.test(l),
      );
    expect(await holds("staging")).toEqual(["🔒 web in staging locked by demo: schema change"]);
    expect(await holds("production")).toEqual([
      "🔒 api in production locked by sre-1: waiting for the staging soak",
      expect.stringMatching(/^🧊 production frozen by sre-1 until .* UTC: until staging is green$/),
    ]);
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

describe("break-glass during a freeze", () => {
  const auditChannel = { platform: "shell" as const, channel: "audit" };
  const sre2 = { id: "slack:U0SRE00002", name: "sre-2", groups: ["slack:S0SRE"] };
  /** Staging with a break-glass policy: one approval from `sre`, posted to the shell session "audit". */
  function breakGlassConfig(freezes: Config["environments"][string]["freezes"] = []) {
    const base = testConfig();
    return {
      ...base,
      environments: {
        ...base.environments,
        staging: {
          ...base.environments.staging,
          freezes,
          breakGlass: {
            required: 1,
            from: ["sre"],
            forbidRequester: true,
            expiresAfterMinutes: 30,
            auditChannel,
          },
        },
      },
    };
  }
  const approve = (jobId: string, user = sreUser) =>
    t?.runtime.handleAction({
      id: `click-${jobId}`,
      user,
      conversation: { platform: "shell", channel: "test" },
      action: "approve",
      value: jobId,
      receivedAt: Date.now(),
    });
  /** Titles of the cards posted to the audit channel, once `count` of them are there. */
  async function auditPosts(count: number): Promise<string[]> {
    for (let i = 0; i < 400; i++) {
      const posts = [...(t?.chat.cards.values() ?? [])].filter(
        (c) => c.conversation?.channel === auditChannel.channel,
      );
      if (posts.length >= count) return posts.map((c) => c.versions.at(-1)?.title ?? "");
      await sleep(25);
    }
    throw new Error(`the audit channel did not get ${count} posts`);
  }

  it("is a config error when its roles are not declared or its audit channel is missing", () => {
    const config = breakGlassConfig();
    const staging = config.environments.staging;
    const withPolicy = (breakGlass: unknown) =>
      configSchema.safeParse({
        ...config,
        environments: { ...config.environments, staging: { ...staging, breakGlass } },
      });
    const unknownRole = withPolicy({ from: ["nobody"], auditChannel });
    expect(unknownRole.error?.issues[0]?.message).toBe('role "nobody" is not declared under roles');
    expect(withPolicy({ from: ["sre"] }).success).toBe(false);
    expect(withPolicy({ from: ["sre"], required: 0, auditChannel }).success).toBe(false);
    expect(withPolicy({ from: ["sre"], auditChannel }).success).toBe(true);
  });

  it("is refused without a policy, without a reason, and outside a freeze", async () => {
    t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
    const noPolicy = await t.runtime.handle(chatCommand('/deploy api staging v2 --break-glass "db is down"'));
    expect(noPolicy.error?.message).toBe(
      "break-glass is not configured for staging: deploys wait for its freeze to end (rollbacks still run)",
    );
    expect(noPolicy.jobIds).toEqual([]);
    await t.close();
    t = await startTestRuntime({
      executor: createGatedExecutor().executor,
      config: breakGlassConfig(),
      work: false,
      notify: false,
    });
    const noReason = await t.runtime.handle(chatCommand("/deploy api staging v2 --break-glass"));
    expect(noReason.error?.message).toBe(
      '--break-glass needs a reason: --break-glass "why this cannot wait"',
    );
    const notFrozen = await t.runtime.handle(
      chatCommand('/deploy api staging v2 --break-glass "db is down"'),
    );
    expect(notFrozen.error?.message).toBe(
      "staging is not frozen: deploy without --break-glass (it follows staging's usual approval)",
    );
    expect(await t.runtime.ops.list()).toEqual([]);
  });

  it("runs an approved break-glass deploy through an ad hoc freeze, posts each step to the audit channel, and keeps a normal deploy waiting", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, config: breakGlassConfig() });
    await t.runtime.handle(chatCommand("/freeze staging 2h release train", sreUser));
    const normal = await t.runtime.handle(chatCommand("/deploy web staging v7"));
    expect((await t.waitForPhase(normal.jobIds[0] as string, ["waiting"])).text).toBe(
      "Waiting · staging is frozen by sre-1: release train",
    );

    const asked = await t.runtime.handle(
      chatCommand('/deploy api staging v2 --break-glass "checkout is down, fix must ship"'),
    );
    const jobId = asked.jobIds[0] as string;
    const pending = await t.waitForPhase(jobId, ["pending-approval"]);
    expect(pending.text).toMatch(/^Needs 1 approval from sre \(not demo\) · expires \d{2}:\d{2} UTC/);
    expect(pending.text).toContain("🚨 break-glass: checkout is down, fix must ship");
    expect(await auditPosts(1)).toEqual(["🚨 Break-glass requested · 🚀 api → staging · v2"]);
    expect(gated.calls).toHaveLength(0);

    // The requester cannot approve it; someone holding `sre` can.
    const own = await approve(jobId, { ...demoUser });
    expect(own?.ok).toBe(false);
    expect((await approve(jobId))?.ok).toBe(true);
    const [call] = await gated.started(1);
    expect(call?.arg).toBe("ghcr.io/acme/api:v2");
    call?.finish();
    const done = await t.waitForPhase(jobId, ["succeeded"]);
    expect(done.approvedBy).toBe("sre-1");

    expect(await auditPosts(3)).toEqual([
      "🚨 Break-glass requested · 🚀 api → staging · v2",
      "🚨 Break-glass approved · 🚀 api → staging · v2",
      "🚨 Break-glass deploy ran · 🚀 api → staging · v2",
    ]);
    // The ran post is edited in place until it shows how the deploy ended.
    const ran = [...t.chat.cards.values()].find((c) => c.versions[0]?.title.includes("deploy ran"));
    for (let i = 0; i < 200 && !ran?.versions.at(-1)?.lines[0]?.startsWith("Deployed"); i++) await sleep(25);
    expect(ran?.versions.at(-1)?.lines).toEqual([
      expect.stringMatching(/^Deployed ghcr\.io\/acme\/api:v2 in \d+s$/),
      "Passed: staging is frozen by sre-1: release train",
      "Requested by demo: checkout is down, fix must ship",
    ]);

    // The ledger has every step, with the reason and the freeze it passed.
    const ledger = (await t.runtime.audit.recent(200)).filter((e) => e.type.startsWith("breakglass."));
    expect(ledger.map((e) => e.type).reverse()).toEqual([
      "breakglass.requested",
      "breakglass.approved",
      "breakglass.ran",
    ]);
    expect(ledger.find((e) => e.type === "breakglass.requested")?.fields).toMatchObject({
      actor: "shell:demo",
      job: jobId,
      reason: "checkout is down, fix must ship",
      freeze: "staging is frozen by sre-1: release train",
    });
    expect(ledger.find((e) => e.type === "breakglass.approved")?.fields).toMatchObject({
      job: jobId,
      approvedBy: "sre-1",
    });
    expect(ledger.find((e) => e.type === "breakglass.ran")?.fields).toMatchObject({
      job: jobId,
      freeze: "staging is frozen by sre-1: release train",
    });

    // The normal deploy is still held by the freeze.
    const still = await t.runtime.status.read(normal.jobIds[0] as string);
    expect(still?.phase).toBe("waiting");
    expect(gated.calls).toHaveLength(1);
    expect((await t.runtime.audit.verify()).ok).toBe(true);
  });

  it("passes a scheduled freeze window once approved, where a normal deploy is refused", async () => {
    // Two windows that together cover every minute of the week.
    const everyDay = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as Array<"mon">;
    const windows = [
      { name: "quiet", timezone: "UTC", days: everyDay, start: "00:00", end: "12:00" },
      { name: "quiet", timezone: "UTC", days: everyDay, start: "12:00", end: "00:00" },
    ];
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, config: breakGlassConfig(windows) });
    const normal = await t.runtime.handle(chatCommand("/deploy api staging v2"));
    expect(normal.error?.message).toMatch(
      /^staging is in the freeze window "quiet" until .*; only rollbacks run$/,
    );

    const asked = await t.runtime.handle(chatCommand('/deploy api staging v3 --break-glass "security fix"'));
    const jobId = asked.jobIds[0] as string;
    await t.waitForPhase(jobId, ["pending-approval"]);
    await approve(jobId, sre2);
    const [call] = await gated.started(1);
    expect(call?.arg).toBe("ghcr.io/acme/api:v3");
    call?.finish();
    await t.waitForPhase(jobId, ["succeeded"]);
    const ran = (await t.runtime.audit.recent(100)).find((e) => e.type === "breakglass.ran");
    expect(ran?.fields.freeze).toMatch(/^staging is in the freeze window "quiet" until /);
  });

  it("does not let a deploy past a freeze on the strength of the flag alone", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, config: breakGlassConfig() });
    await t.runtime.handle(chatCommand("/freeze staging 2h", sreUser));
    // A job whose payload claims break-glass but that was never approved (written to the queue directly).
    const data = {
      kind: "deploy" as const,
      service: "api",
      env: "staging",
      version: "v9",
      breakGlass: { reason: "trust me" },
      requestedBy: { id: "shell:demo", name: "demo" },
      conversation: { platform: "shell" as const, channel: "test" },
      commandId: "forged",
      requestedAt: Date.now(),
      traceId: "forged",
    };
    await t.runtime.ops.enqueueData("jforged001", data);
    expect((await t.waitForPhase("jforged001", ["waiting"])).text).toBe(
      "Waiting · staging is frozen by sre-1",
    );
    expect(gated.calls).toHaveLength(0);
  });
});

describe("a lock on every service and a lock on one", () => {
  const lockOf = (by: string, byId: string, reason: string) =>
    JSON.stringify({ by, byId, reason, at: Date.now() });

  it("holds a job under the lock on every service even when its requester locked the service itself", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor });
    await t.runtime.handle(chatCommand("/lock * staging release train"));
    // dev-1's lock on api, as one taken before a lock on every service refused it would have stayed.
    await t.runtime.redis.hset(t.runtime.keys.locks, "api:staging", lockOf("dev-1", someone.id, "hotfix"));

    const theirs = (await t.runtime.handle(chatCommand("/deploy api staging v2", someone)))
      .jobIds[0] as string;
    expect((await t.waitForPhase(theirs, ["waiting", "running"])).text).toBe(
      "Waiting · api/staging is locked by demo: release train",
    );
    // And the holder of the lock on every service waits for dev-1's lock on api.
    const own = (await t.runtime.handle(chatCommand("/scale api staging 3"))).jobIds[0] as string;
    expect((await t.waitForPhase(own, ["waiting"])).text).toBe(
      "Waiting · api/staging is locked by dev-1: hotfix",
    );
    await sleep(300);
    expect(gated.calls).toHaveLength(0);

    // Once the lock on every service lifts, dev-1's own lock no longer holds their deploy.
    await t.runtime.handle(chatCommand("/unlock * staging"));
    const [first] = await gated.started(1);
    expect(first?.kind).toBe("deploy");
    first?.finish();
    await t.waitForPhase(theirs, ["succeeded"]);
    expect((await t.runtime.status.read(own))?.text).toBe("Waiting · api/staging is locked by dev-1: hotfix");
  });

  it("refuses a lock on a service under someone else's lock on every service, and the reverse, naming the lock", async () => {
    t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
    const locks = async () =>
      ((await t?.runtime.handle(chatCommand("/queue staging")))?.card?.lines ?? []).filter((l) =>
        l.startsWith("🔒"),
      );
    await t.runtime.handle(chatCommand("/lock * staging release train"));
    const under = await t.runtime.handle(chatCommand("/lock api staging hotfix", someone));
    expect(under.ok).toBe(false);
    expect(under.error?.code).toBe("conflict");
    expect(under.error?.message).toBe(
      "every service in staging is already locked by demo: release train; to lock api in staging, `unlock * staging` first",
    );
    expect((await t.runtime.audit.recent(1))[0]?.type).toBe("command.refused");
    expect(await locks()).toEqual(["🔒 every service in staging locked by demo: release train"]);
    // The holder may still lock one service of their own.
    expect((await t.runtime.handle(chatCommand("/lock api staging schema change"))).ok).toBe(true);

    await t.runtime.handle(chatCommand("/unlock * staging"));
    await t.runtime.handle(chatCommand("/unlock api staging"));
    await t.runtime.handle(chatCommand("/lock api staging hotfix", someone));
    const over = await t.runtime.handle(chatCommand("/lock * staging release train"));
    expect(over.ok).toBe(false);
    expect(over.error?.message).toBe(
      "api in staging is already locked by dev-1: hotfix; to lock every service in staging, `unlock api staging` first",
    );
    expect(await locks()).toEqual(["🔒 api in staging locked by dev-1: hotfix"]);
    // Their own lock on a service does not stop them locking every service.
    expect((await t.runtime.handle(chatCommand("/lock * staging hotfix, all of it", someone))).ok).toBe(true);
  });

  it("gives one of a lock on every service and someone else's lock on one service, asked at the same moment", async () => {
    t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
    for (let round = 0; round < 5; round++) {
      const replies = await Promise.all([
        t.runtime.handle(chatCommand("/lock * staging release train")),
        t.runtime.handle(chatCommand("/lock web staging hotfix", someone)),
      ]);
      expect(replies.map((r) => r.ok).sort()).toEqual([false, true]);
      await t.runtime.redis.del(t.runtime.keys.locks);
    }
  });
});

describe("unlock", () => {
  it("names the holder of the lock it removed, even while the lock changes hands as it unlocks", async () => {
    t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
    const { redis, keys } = t.runtime;
    const counter = `${keys.locks}-handovers`;
    // Hands the lock to a new holder in one step while it exists: answers the holder's number, 0 once it is gone.
    const handOver = `local n = redis.call('INCR', KEYS[2])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({ by = 'holder-' .. n, byId = 'slack:UHOLD' .. n, at = 0 }))
return n`;
    const others = Array.from({ length: 4 }, () => redis.duplicate({ enableOfflineQueue: true }));
    try {
      for (let round = 0; round < 10; round++) {
        await redis.hset(
          keys.locks,
          "api:staging",
          JSON.stringify({ by: "holder-0", byId: "slack:UHOLD0", at: 0 }),
        );
        let last = 0;
        let gone = false;
        const handOvers = others.map(async (other) => {
          while (!gone) {
            const numbers = (await Promise.all(
              Array.from({ length: 8 }, () => other.eval(handOver, 2, keys.locks, counter, "api:staging")),
            )) as number[];
            for (const n of numbers) {
              if (n === 0) gone = true;
              else last = Math.max(last, n);
            }
          }
        });
        await sleep(5);
        const reply = await t.runtime.handle(chatCommand("/unlock api staging", sreUser));
        await Promise.all(handOvers);
        // The lock it removed was the last one handed over before it was gone.
        expect(reply.card?.lines).toEqual([`It was locked by holder-${last}.`]);
        const [unlock] = await t.runtime.audit.recent(1);
        expect(unlock?.fields).toMatchObject({ actor: sreUser.id, holder: `slack:UHOLD${last}` });
      }
    } finally {
      for (const other of others) other.disconnect();
    }
  });
});
