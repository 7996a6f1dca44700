import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { toMirrorCardId } from "../../src/core/approval-mirror.ts";
import { type Config, configSchema } from "../../src/core/config.ts";
import type { ChatUser, Conversation } from "../../src/core/model.ts";
import { createApprovalMirrors } from "../../src/notify/create-approval-mirrors.ts";
import { chatCommand, sre } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import {
  createRecordingChat,
  type RecordedCard,
  startTestRuntime,
  type TestRuntime,
  testConfig,
} from "../helpers/test-runtime.ts";

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const approvalsRoom: Conversation = { platform: "teams", channel: "19:approvals@thread.tacv2" };
const typedIn: Conversation = { platform: "shell", channel: "test" };

/** Holds `sre` through its Teams identity (examples/shipbot.yaml). */
const teamsSre: ChatUser = {
  id: "teams:00000000-0000-0000-0000-0000000000a1",
  name: "sre-teams",
  groups: [],
};
const teamsStranger: ChatUser = {
  id: "teams:00000000-0000-0000-0000-0000000000ff",
  name: "guest",
  groups: [],
};

/** Production mirrors its approval requests to a Teams channel, and to the shell session commands are typed in. */
function mirroredConfig(): Config {
  const base = testConfig();
  const production = base.environments.production as Config["environments"][string];
  return {
    ...base,
    environments: {
      ...base.environments,
      production: {
        ...production,
        approval: {
          ...(production.approval as NonNullable<typeof production.approval>),
          mirrorTo: [approvalsRoom, typedIn],
        },
      },
    },
  };
}

async function start() {
  const gated = createGatedExecutor();
  const teams = createRecordingChat();
  t = await startTestRuntime({ executor: gated.executor, config: mirroredConfig(), chats: { teams } });
  return { gated, teams, t };
}

function click(
  runtime: TestRuntime,
  user: ChatUser,
  action: "approve" | "reject",
  jobId: string,
  conversation: Conversation,
) {
  return runtime.runtime.handleAction({
    id: `click-${Math.random()}`,
    user,
    conversation,
    action,
    value: jobId,
    receivedAt: Date.now(),
  });
}

/** The one card of a job a recording chat holds (its footer names the job). */
function cardOf(chat: ReturnType<typeof createRecordingChat>, jobId: string): RecordedCard | undefined {
  const found = [...chat.cards.values()].filter((c) => c.versions[0]?.footer?.includes(`job ${jobId} `));
  if (found.length > 1) throw new Error(`${found.length} cards for ${jobId}`);
  return found[0];
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = probe();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits until the card's newest version starts its first line with `icon`, and returns that version. */
function lastShowing(chat: ReturnType<typeof createRecordingChat>, jobId: string, icon: string) {
  return until(`card of ${jobId} showing ${icon}`, () => {
    const last = cardOf(chat, jobId)?.versions.at(-1);
    return last?.lines[0]?.startsWith(icon) ? last : undefined;
  });
}

describe("approval requests mirrored to another conversation", () => {
  it("shows the request in Teams, counts an approval given there, and ends both copies in the same state", async () => {
    const { gated, teams, t } = await start();
    const reply = await t.runtime.handle(chatCommand("/deploy api production v2", sre(1)));
    const jobId = reply.jobIds[0] as string;

    const original = await lastShowing(t.chat, jobId, "✋");
    const mirror = await lastShowing(teams, jobId, "✋");
    expect(cardOf(teams, jobId)?.conversation).toEqual(approvalsRoom);
    expect(mirror.title).toBe(original.title);
    expect(mirror.lines).toEqual(original.lines);
    expect(mirror.actions.map((a) => `${a.id}:${a.value}`)).toEqual([`approve:${jobId}`, `reject:${jobId}`]);
    expect(mirror.footer).toBe(`job ${jobId} · requested by sre-1 · mirrored from the shell`);
    // The conversation it was typed in already has the original: no second copy there.
    expect([...t.chat.cards.values()].filter((c) => c.versions[0]?.footer?.includes(jobId))).toHaveLength(1);

    const refused = await click(t, teamsStranger, "approve", jobId, approvalsRoom);
    expect(refused.card?.title).toBe("not allowed: approving needs role `sre`; you hold no role");
    expect((await t.runtime.status.read(jobId))?.approvedBy).toBeUndefined();

    expect((await click(t, sre(2), "approve", jobId, typedIn)).card?.title).toBe(
      "Your approval counts: 1 of 2",
    );
    // Both copies show the count, whichever conversation it came from.
    await until("the mirror to show the first approval", () =>
      cardOf(teams, jobId)?.versions.at(-1)?.lines[0]?.includes("1 of 2") ? true : undefined,
    );
    expect((await click(t, teamsSre, "approve", jobId, approvalsRoom)).card?.title).toBe(
      `Approved by sre-2, sre-teams: ${jobId} is queued`,
    );

    const [call] = await gated.started(1);
    call?.finish();
    await t.waitForPhase(jobId, ["succeeded"]);
    const doneHere = await lastShowing(t.chat, jobId, "✅");
    const doneThere = await lastShowing(teams, jobId, "✅");
    expect(doneThere.lines).toEqual(doneHere.lines);
    expect(doneThere.fields).toEqual(doneHere.fields);
    expect(doneThere.fields).toContainEqual({ label: "Approved by", value: "sre-2, sre-teams" });
    expect(doneThere.actions.map((a) => a.id)).toEqual(["rollback"]);
    // Edited in place: one message in Teams for the whole life of the request.
    expect([...teams.cards.values()]).toHaveLength(1);
    expect(gated.calls).toHaveLength(1);

    expect((await click(t, teamsSre, "approve", jobId, approvalsRoom)).card?.title).toBe(
      "this request is already succeeded; nothing changed",
    );
  });

  it("ends every copy when the request is rejected in the mirror or expires: none stays pending", async () => {
    const { gated, teams, t } = await start();
    const rejected = (await t.runtime.handle(chatCommand("/deploy api production v2", sre(1))))
      .jobIds[0] as string;
    const expiring = (await t.runtime.handle(chatCommand("/deploy web production v2", sre(1))))
      .jobIds[0] as string;
    await lastShowing(teams, rejected, "✋");
    await lastShowing(teams, expiring, "✋");

    expect((await click(t, teamsSre, "reject", rejected, approvalsRoom)).card?.title).toBe(
      `Rejected ${rejected}; nothing will run`,
    );
    const past = Date.now() - 1;
    await t.runtime.redis.hset(t.runtime.keys.job(expiring), "expiresAt", String(past));
    await t.runtime.redis.zadd(t.runtime.keys.approvals, past, expiring);

    for (const jobId of [rejected, expiring]) {
      await t.waitForPhase(jobId, ["cancelled"]);
      const here = await lastShowing(t.chat, jobId, "🚫");
      const there = await lastShowing(teams, jobId, "🚫");
      expect(there.lines).toEqual(here.lines);
      expect(there.actions).toEqual([]);
    }
    expect(cardOf(teams, rejected)?.versions.at(-1)?.lines[0]).toBe("🚫 Rejected by sre-teams; nothing ran");
    expect(cardOf(teams, expiring)?.versions.at(-1)?.lines[0]).toBe(
      "🚫 Expired: nobody decided in time; nothing ran",
    );
    expect(gated.calls).toHaveLength(0);
  });

  it("leaves jobs that never asked for approval alone", async () => {
    const { gated, teams, t } = await start();
    // Rollbacks skip production's approval; staging needs none.
    const rollback = (await t.runtime.handle(chatCommand("/rollback api production", sre(1))))
      .jobIds[0] as string;
    const [call] = await gated.started(1);
    call?.finish();
    await t.waitForPhase(rollback, ["succeeded"]);
    await lastShowing(t.chat, rollback, "✅");
    expect(teams.cards.size).toBe(0);
    expect(await t.runtime.redis.zscore(t.runtime.keys.cards, toMirrorCardId(0, rollback))).toBeNull();
  });

  it("keeps editing the copies of a request after the configuration stops mirroring", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({
      executor: gated.executor,
      config: mirroredConfig(),
      notify: false,
      work: false,
    });
    const jobId = (await t.runtime.handle(chatCommand("/deploy api production v2", sre(1))))
      .jobIds[0] as string;
    const pending = await t.waitForPhase(jobId, ["pending-approval"]);
    const mirroring = createApprovalMirrors({
      redis: t.runtime.redis,
      keys: t.runtime.keys,
      config: t.config,
      status: t.runtime.status,
    });
    await mirroring.follower.follow(pending);
    const mirrorId = toMirrorCardId(0, jobId);
    expect(await mirroring.source.load(mirrorId)).toMatchObject({ conversation: approvalsRoom });

    await click(t, teamsSre, "reject", jobId, approvalsRoom);
    await t.runtime.redis.zrem(t.runtime.keys.cards, mirrorId);
    const unmirrored = createApprovalMirrors({
      redis: t.runtime.redis,
      keys: t.runtime.keys,
      config: testConfig(),
      status: t.runtime.status,
    });
    const rejected = await t.waitForPhase(jobId, ["cancelled"]);
    await unmirrored.follower.follow(rejected);
    expect(await t.runtime.redis.zscore(t.runtime.keys.cards, mirrorId)).not.toBeNull();
    expect(await unmirrored.source.load(mirrorId)).toMatchObject({
      conversation: approvalsRoom,
      card: { lines: ["🚫 Rejected by sre-teams; nothing ran"] },
    });
  });

  it("refuses a mirror list that names a conversation twice or an unknown platform", () => {
    const config = mirroredConfig();
    const production = config.environments.production as Config["environments"][string];
    const withMirrors = (mirrorTo: unknown) =>
      configSchema.safeParse({
        ...config,
        environments: {
          ...config.environments,
          production: { ...production, approval: { ...production.approval, mirrorTo } },
        },
      });
    const twice = withMirrors([approvalsRoom, approvalsRoom]);
    expect(twice.error?.issues[0]?.path).toEqual(["environments", "production", "approval", "mirrorTo"]);
    expect(twice.error?.issues[0]?.message).toBe("names the same conversation twice; list each one once");
    expect(withMirrors([{ platform: "email", channel: "x" }]).success).toBe(false);
    expect(withMirrors([{ platform: "slack", channel: "C0APPROVALS" }]).success).toBe(true);
  });
});
