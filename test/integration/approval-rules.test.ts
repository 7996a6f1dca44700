import { afterEach, describe, expect, it } from "vitest";
import type { AuditEntry } from "../../src/audit/audit-log.ts";
import { createRuntime } from "../../src/bin/create-runtime.ts";
import type { ApprovalPolicy, Config } from "../../src/core/config.ts";
import type { ChatUser } from "../../src/core/model.ts";
import { createGitHubClient, type GitHubClient } from "../../src/github/index.ts";
import { createApprovals } from "../../src/queue/approval-scripts.ts";
import { createRedis } from "../../src/queue/redis.ts";
import { type GitHubEmulator, startGitHubEmulator } from "../emulators/github/index.ts";
import { chatCommand, sre } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import {
  quietLog,
  redisUrl,
  startTestRuntime,
  type TestRuntime,
  testConfig,
} from "../helpers/test-runtime.ts";

let t: TestRuntime | undefined;
let github: GitHubEmulator | undefined;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await t?.close();
  t = undefined;
  await github?.close();
  github = undefined;
});

const sec = (n: number): ChatUser => ({
  id: `slack:U0SEC0000${n}`,
  name: `sec-${n}`,
  groups: ["slack:S0SEC"],
});

/** The example config with production's approval policy changed, a `security` role, and `people`. */
function configWith(approval: Partial<ApprovalPolicy>, extra: Partial<Config> = {}): Config {
  const base = testConfig();
  const production = base.environments.production;
  if (!production?.approval) throw new Error("example config has no production approval");
  return {
    ...base,
    environments: {
      ...base.environments,
      production: { ...production, approval: { ...production.approval, ...approval } },
    },
    roles: {
      ...base.roles,
      security: {
        permissions: ["read"],
        environments: ["*"],
        services: ["*"],
        users: [],
        groups: ["slack:S0SEC"],
      },
    },
    ...extra,
  };
}

function click(runtime: TestRuntime, user: ChatUser, jobId: string) {
  return runtime.runtime.handleAction({
    id: `click-${Math.random()}`,
    user,
    conversation: { platform: "shell", channel: "test" },
    action: "approve",
    value: jobId,
    receivedAt: Date.now(),
  });
}

async function audited(runtime: TestRuntime, type: string): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  await runtime.runtime.audit.read(0, (page) => {
    entries.push(...page.filter((e) => e.type === type));
  });
  return entries;
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("approvals from distinct groups (one sre and one security)", () => {
  it("counts one approval per role, refuses a second from the same role with the reason, and audits it", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({
      executor: gated.executor,
      config: configWith({ from: ["sre", "security"], distinctGroups: true }),
    });
    const reply = await t.runtime.handle(chatCommand("/deploy api production v2", sre(1)));
    const jobId = reply.jobIds[0] as string;
    const pending = await t.waitForPhase(jobId, ["pending-approval"]);
    expect(pending.text).toMatch(
      /^Needs 2 approvals, one each from sre and security \(not sre-1\) · expires \d{2}:\d{2} UTC$/,
    );

    expect((await click(t, sre(2), jobId)).card?.title).toBe("Your approval counts: 1 of 2");
    const refused = await click(t, sre(3), jobId);
    expect(refused.card?.title).toBe(
      "not allowed: sre already approved; the next approval must come from security",
    );
    expect(refused.error?.code).toBe("forbidden");
    expect((await t.runtime.status.read(jobId))?.text).toBe(
      "Approved by sre-2 (sre) · 1 of 2 · waiting for more",
    );
    const denied = await audited(t, "approval.denied");
    expect(denied.map((e) => [e.fields.actor, e.fields.reason])).toEqual([
      [sre(3).id, "sre already approved; the next approval must come from security"],
    ]);

    expect((await click(t, sec(1), jobId)).card?.title).toBe(
      `Approved by sre-2 (sre), sec-1 (security): ${jobId} is queued`,
    );
    const [call] = await gated.started(1);
    call?.finish();
    expect((await t.waitForPhase(jobId, ["succeeded"])).approvedBy).toBe("sre-2 (sre), sec-1 (security)");
  });

  it("lets exactly one of two racing approvers from the same role count", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({
      executor: gated.executor,
      config: configWith({ from: ["sre", "security"], distinctGroups: true }),
    });
    const reply = await t.runtime.handle(chatCommand("/deploy api production v2", sre(1)));
    const jobId = reply.jobIds[0] as string;
    await t.waitForPhase(jobId, ["pending-approval"]);
    const titles = (await Promise.all([click(t, sre(2), jobId), click(t, sre(3), jobId)])).map(
      (r) => r.card?.title,
    );
    expect(titles.sort()).toEqual([
      "Your approval counts: 1 of 2",
      "not allowed: sre already approved; the next approval must come from security",
    ]);
    const state = await t.runtime.status.read(jobId);
    expect(state?.phase).toBe("pending-approval");
    expect(state?.text).toMatch(/^Approved by sre-[23] \(sre\) · 1 of 2 · waiting for more$/);
    expect(await t.runtime.redis.scard(`${t.runtime.keys.job(jobId)}:voters`)).toBe(1);
    expect(gated.calls).toHaveLength(0);
  });

  it("gives someone holding both roles the first free one", async () => {
    t = await startTestRuntime({
      executor: createGatedExecutor().executor,
      config: configWith({ from: ["sre", "security"], distinctGroups: true }),
      work: false,
    });
    const reply = await t.runtime.handle(chatCommand("/deploy api production v2", sre(1)));
    const jobId = reply.jobIds[0] as string;
    await t.waitForPhase(jobId, ["pending-approval"]);
    const both = { id: "slack:U0BOTH0001", name: "both", groups: ["slack:S0SRE", "slack:S0SEC"] };
    await click(t, sec(1), jobId);
    expect((await click(t, both, jobId)).card?.title).toBe(
      `Approved by sec-1 (security), both (sre): ${jobId} is queued`,
    );
  });

  it("is refused by the config when fewer roles than approvals are named", async () => {
    const { configSchema } = await import("../../src/core/config.ts");
    const config = configWith({ required: 3, from: ["sre", "security"], distinctGroups: true });
    const result = configSchema.safeParse(config);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.message)).toContain(
      "3 approvals from different roles need at least 3 roles under from",
    );
  });
});

describe("commit authors may not approve (forbidCommitAuthors)", () => {
  async function startWithGitHub(people: Config["people"]) {
    github = await startGitHubEmulator();
    github.createRepo("acme/api", { "README.md": "api\n" });
    const deployed = github.commit("acme/api", "main", "Add the health endpoint", {
      author: { name: "Old Timer", email: "old@example.com", login: "old-timer" },
    });
    const head = github.commit(
      "acme/api",
      "main",
      "Cache the user list\n\nCo-authored-by: Pair Person <Pair@Example.com>",
      { author: { name: "Dev One", email: "dev1@example.com", login: "dev-1" } },
    );
    const client = createGitHubClient({
      auth: { kind: "token", token: "ghp_test" },
      baseUrl: github.url,
      writeSpacingMs: 0,
      notifySpacingMs: 0,
    });
    await recordActive(client, deployed);
    const config = configWith({ forbidCommitAuthors: true }, people ? { people } : {});
    const api = config.services.api;
    if (!api) throw new Error("example config has no api");
    config.services = {
      ...config.services,
      api: {
        ...api,
        github: { repo: "acme/api", imageTag: "{sha7}", requiredChecks: [], deployments: false },
      },
    };
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, config, github: client });
    return { gated, t, deployed, head };
  }

  /** What production runs according to GitHub: the base of the change. */
  async function recordActive(client: GitHubClient, sha: string): Promise<void> {
    const { data } = await client.rest.repos.createDeployment({
      owner: "acme",
      repo: "api",
      ref: sha,
      environment: "production",
      auto_merge: false,
      required_contexts: [],
    });
    if (!("id" in data)) throw new Error("no deployment created");
    await client.rest.repos.createDeploymentStatus({
      owner: "acme",
      repo: "api",
      deployment_id: data.id,
      state: "success",
    });
  }

  it("refuses the authors and co-authors of the deployed commits, by mapped login or chat email, and audits it", async () => {
    const { gated, t, deployed, head } = await startWithGitHub({
      "slack:U0SRE00002": { github: "Dev-1", emails: [] },
      "slack:U0SRE00004": { github: "old-timer", emails: [] },
    });
    const reply = await t.runtime.handle(chatCommand("/deploy api production main", sre(1)));
    expect(reply.error?.message).toBeUndefined();
    const jobId = reply.jobIds[0] as string;
    const pending = await t.waitForPhase(jobId, ["pending-approval"]);
    expect(pending.text).toMatch(
      /^Needs 2 approvals from sre \(not sre-1, not the commit authors\) · expires \d{2}:\d{2} UTC · /,
    );
    expect(pending.text).toContain(
      `commit ${head.slice(0, 7)} · 1 commit since ${deployed.slice(0, 7)} by dev-1`,
    );

    const reason = "you wrote commits in this change; someone who did not must approve it";
    // Mapped to the author's GitHub login (case does not matter).
    expect((await click(t, sre(2), jobId)).card?.title).toBe(`not allowed: ${reason}`);
    // The co-author, known by the email the chat platform gives.
    expect((await click(t, sre(3, { email: "pair@example.com" }), jobId)).card?.title).toBe(
      `not allowed: ${reason}`,
    );
    expect((await t.runtime.status.read(jobId))?.phase).toBe("pending-approval");
    expect(gated.calls).toHaveLength(0);
    const denied = await audited(t, "approval.denied");
    expect(denied.map((e) => [e.fields.actor, e.fields.reason])).toEqual([
      [sre(2).id, reason],
      [sre(3).id, reason],
    ]);

    // The author of what is already deployed did not write this change.
    expect((await click(t, sre(4), jobId)).card?.title).toBe("Your approval counts: 1 of 2");
    expect((await click(t, sre(5), jobId)).card?.title).toBe(`Approved by sre-4, sre-5: ${jobId} is queued`);
    const [call] = await gated.started(1);
    call?.finish();
    await t.waitForPhase(jobId, ["succeeded"]);
  });

  it("requests nothing when GitHub cannot list the authors (fails closed)", async () => {
    const { t } = await startWithGitHub(undefined);
    github?.failNext({ path: /\/compare\// }, 404);
    const reply = await t.runtime.handle(chatCommand("/deploy api production main", sre(1)));
    expect(reply.ok).toBe(false);
    expect(reply.jobIds).toEqual([]);
    expect(reply.error?.message).toMatch(
      /^api in production may not be approved by its commit authors, and GitHub could not say who they are: .+; nothing was requested$/,
    );
    expect(await t.runtime.redis.zcard(t.runtime.keys.approvals)).toBe(0);
  });

  it("requests nothing when shipbot has no GitHub access to learn the authors", async () => {
    const config = configWith({ forbidCommitAuthors: true });
    const api = config.services.api;
    if (!api) throw new Error("example config has no api");
    config.services = {
      ...config.services,
      api: {
        ...api,
        github: { repo: "acme/api", imageTag: "{sha7}", requiredChecks: [], deployments: false },
      },
    };
    t = await startTestRuntime({ executor: createGatedExecutor().executor, config, work: false });
    const reply = await t.runtime.handle(chatCommand("/deploy api production v2", sre(1)));
    expect(reply.error?.message).toBe(
      "api in production may not be approved by its commit authors, and shipbot has no GitHub access to learn who they are; nothing was requested",
    );
    expect(await t.runtime.redis.zcard(t.runtime.keys.approvals)).toBe(0);
  });
});

describe("reminders before a request expires", () => {
  /** Another process on the same Redis that keeps cards (notifier and sweeper), posting to the same chat. */
  async function secondNotifier(runtime: TestRuntime) {
    const other = await createRuntime({
      config: runtime.config,
      redisUrl,
      executor: createGatedExecutor().executor,
      chats: { shell: runtime.chat },
      log: quietLog,
      accept: false,
      work: false,
      notify: true,
    });
    cleanups.push(() => other.close());
    return other;
  }

  const requestCardOf = (runtime: TestRuntime, jobId: string) =>
    [...runtime.chat.cards.values()].find(
      (c) => c.conversation?.thread === undefined && c.versions[0]?.footer?.startsWith(`job ${jobId} `),
    );
  const remindersIn = (runtime: TestRuntime) =>
    [...runtime.chat.cards.values()].filter((c) => c.versions[0]?.title.startsWith("⏰ Approval reminder"));

  it("posts the reminder once as a reply in the request card's thread, with two notifiers and sweepers, naming who is still needed and when it expires", async () => {
    t = await startTestRuntime({
      executor: createGatedExecutor().executor,
      config: configWith({ from: ["sre", "security"], distinctGroups: true }),
      work: false,
    });
    await secondNotifier(t);
    const reply = await t.runtime.handle(chatCommand("/deploy api production v2", sre(1)));
    const jobId = reply.jobIds[0] as string;
    await t.waitForPhase(jobId, ["pending-approval"]);
    const keys = t.runtime.keys;
    // Scheduled ten minutes before the 30-minute expiry.
    const [expiresAt, remindAt] = [
      Number(await t.runtime.redis.hget(keys.job(jobId), "expiresAt")),
      Number(await t.runtime.redis.zscore(keys.approvalReminders, jobId)),
    ];
    expect(expiresAt - remindAt).toBe(10 * 60_000);
    await click(t, sre(2), jobId);
    const request = await until("the request card", () => requestCardOf(t as TestRuntime, jobId));

    // Make it due now rather than in twenty minutes.
    await t.runtime.redis.zadd(keys.approvalReminders, Date.now() - 1, jobId);
    const [reminder] = await until("the reminder reply", () => {
      const found = remindersIn(t as TestRuntime);
      return found.length > 0 ? found : undefined;
    });
    expect(reminder?.conversation).toEqual({ platform: "shell", channel: "test", thread: request.ref });
    const card = reminder?.versions[0];
    expect(card?.title).toBe("⏰ Approval reminder · 🚀 api → production · v2");
    expect(card?.lines).toHaveLength(1);
    expect(card?.lines[0]).toMatch(
      /^Still needs 1 more approval from security · expires \d{2}:\d{2} UTC \(in (30|29) min\)$/,
    );
    // Only the role still open is addressed: security, bound to the Slack user group S0SEC.
    expect(card?.notify).toEqual(["slack:S0SEC"]);
    expect(card?.actions).toEqual([]);

    // Let both notifiers and sweepers go round again: still one reply, one ledger entry, no edit of the card.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(remindersIn(t)).toHaveLength(1);
    expect(reminder?.versions).toHaveLength(1);
    expect(await audited(t, "approval.reminded")).toHaveLength(1);
    expect(request.versions.flatMap((v) => v.lines).some((l) => l.includes("Reminder"))).toBe(false);
    expect(await t.runtime.redis.zcard(keys.approvalReminders)).toBe(0);
    expect((await t.runtime.status.read(jobId))?.phase).toBe("pending-approval");
  });

  it("claims a due reminder once when two processes race, and posts nothing for a request decided before it renders", async () => {
    t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
    const redis = createRedis({ url: redisUrl, role: "worker" });
    cleanups.push(() => redis.quit());
    const [one, two] = [
      createApprovals(t.runtime.redis, t.runtime.keys),
      createApprovals(redis, t.runtime.keys),
    ];
    const keys = t.runtime.keys;
    const open = (await t.runtime.handle(chatCommand("/deploy api production v2", sre(1))))
      .jobIds[0] as string;
    const rejected = (await t.runtime.handle(chatCommand("/deploy web production v2", sre(1))))
      .jobIds[0] as string;
    const late = (await t.runtime.handle(chatCommand("/scale api production 3", sre(1)))).jobIds[0] as string;
    const reject = (jobId: string) =>
      t?.runtime.handleAction({
        id: `reject-${jobId}`,
        user: sre(2),
        conversation: { platform: "shell", channel: "test" },
        action: "reject",
        value: jobId,
        receivedAt: Date.now(),
      });
    await reject(rejected);
    for (const jobId of [open, rejected, late])
      await t.runtime.redis.zadd(keys.approvalReminders, Date.now() - 1, jobId);
    const claimed = (await Promise.all([one.remind(), two.remind(), one.remind()])).flat();
    expect(claimed.sort()).toEqual([open, late].sort());
    expect(await t.runtime.redis.zscore(keys.cards, `r-${open}`)).not.toBeNull();
    expect(await t.runtime.redis.zscore(keys.cards, `r-${rejected}`)).toBeNull();
    // The request's own card is not edited for the reminder.
    expect((await t.runtime.status.read(open))?.text).not.toContain("Reminder");
    // Decided after the claim, before any notifier rendered the reminder.
    await reject(late);

    await secondNotifier(t);
    const reminder = await until("the reminder reply", () => remindersIn(t as TestRuntime)[0]);
    // The notifier may reach the reply before the request's card: the reply waits for it.
    expect(reminder.conversation?.thread).toBe(requestCardOf(t, open)?.ref);
    expect(reminder.versions[0]?.lines[0]).toMatch(/^Still needs 2 more approvals from sre · /);
    await until("the decided request's reminder to be dropped", async () => {
      const [queued, inflight] = await Promise.all([
        t?.runtime.redis.zscore(keys.cards, `r-${late}`),
        t?.runtime.redis.zscore(keys.cardsInflight, `r-${late}`),
      ]);
      return queued === null && inflight === null ? true : undefined;
    });
    expect(remindersIn(t)).toHaveLength(1);
  });
});
