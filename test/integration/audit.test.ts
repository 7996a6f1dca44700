import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { createAuditLog } from "../../src/audit/audit-log.ts";
import { parseSince } from "../../src/bin/run-audit.ts";
import { createRedis } from "../../src/queue/redis.ts";
import { chatCommand, stranger } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { spawnShipbot, writeConfig } from "../helpers/spawn-shipbot.ts";
import { redisUrl, startTestRuntime, type TestRuntime } from "../helpers/test-runtime.ts";

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

async function withHistory(): Promise<TestRuntime> {
  const gated = createGatedExecutor();
  t = await startTestRuntime({ executor: gated.executor });
  const reply = await t.runtime.handle(chatCommand("/deploy api staging v2"));
  await t.runtime.handle(chatCommand("/deploy api production v2"));
  await t.runtime.handle(chatCommand("/status api", stranger));
  const [call] = await gated.started(1);
  call?.finish();
  await t.waitForPhase(reply.jobIds[0] as string, ["succeeded"]);
  return t;
}

async function entries(runtime: TestRuntime): Promise<Array<[string, string[]]>> {
  return (await runtime.runtime.redis.xrange(runtime.runtime.keys.audit, "-", "+")) as Array<
    [string, string[]]
  >;
}

/** Rewrites the stream with one entry changed, keeping every id: what someone with Redis access could do. */
async function rewrite(
  runtime: TestRuntime,
  change: (id: string, flat: string[]) => string[] | null,
): Promise<string> {
  const rows = await entries(runtime);
  const redis = runtime.runtime.redis;
  const key = runtime.runtime.keys.audit;
  await redis.del(key);
  let changedId = "";
  for (const [id, flat] of rows) {
    const next = change(id, flat);
    if (next !== flat && !changedId) changedId = id;
    if (next) await redis.xadd(key, id, ...next);
  }
  return changedId;
}

describe("audit ledger", () => {
  it("records commands, denials and every job transition, in a chain that verifies", async () => {
    const runtime = await withHistory();
    const rows = await entries(runtime);
    const types = rows.map(([, flat]) => flat[flat.indexOf("type") + 1]);
    expect(types).toEqual(expect.arrayContaining(["command.denied", "job.running", "job.succeeded"]));
    const denied = rows.find(([, flat]) => flat.includes("command.denied"))?.[1] ?? [];
    expect(denied[denied.indexOf("reason") + 1]).toMatch(
      /^not allowed: deploy api in production needs role `sre`/,
    );
    const result = await runtime.runtime.audit.verify();
    expect(result).toMatchObject({ ok: true, trimmed: false });
    expect(result.checked).toBe(rows.length);
  });

  it("names the first entry whose content was changed", async () => {
    const runtime = await withHistory();
    const target = (await entries(runtime))[1]?.[0] as string;
    // Back-date the entry: the kind of quiet edit the chain exists to expose.
    await rewrite(runtime, (id, flat) =>
      id === target ? flat.map((v, i) => (flat[i - 1] === "at" ? String(Number(v) - 3_600_000) : v)) : flat,
    );
    const result = await runtime.runtime.audit.verify();
    expect(result.ok).toBe(false);
    expect(result.broken?.id).toBe(target);
    expect(result.broken?.reason).toMatch(/content does not match its hash/);
  });

  it("notices a removed entry", async () => {
    const runtime = await withHistory();
    const rows = await entries(runtime);
    const removed = rows[1]?.[0];
    await runtime.runtime.redis.xdel(runtime.runtime.keys.audit, removed as string);
    const result = await runtime.runtime.audit.verify();
    expect(result.ok).toBe(false);
    expect(result.broken?.id).toBe(rows[2]?.[0]);
    expect(result.broken?.reason).toMatch(/entry was removed or reordered/);
  });

  it("verifies a valid chain while other processes keep appending", async () => {
    const runtime = await withHistory();
    // Another shipbot process (its own connection) appending as fast as it can, as a busy bot does.
    const other = createRedis({ url: redisUrl, role: "worker" });
    const writer = createAuditLog(other, runtime.runtime.keys);
    let appending = true;
    const appends = (async () => {
      while (appending) await writer.append("command.accepted", { actor: "U2", text: "/status api" });
    })();
    try {
      const results = [];
      for (let i = 0; i < 20; i++) results.push(await runtime.runtime.audit.verify());
      expect(results.filter((r) => !r.ok)).toEqual([]);
    } finally {
      appending = false;
      await appends;
      other.disconnect();
    }
    expect(await runtime.runtime.audit.verify()).toMatchObject({ ok: true });
  });

  it("notices that every entry was removed", async () => {
    const runtime = await withHistory();
    await runtime.runtime.redis.del(runtime.runtime.keys.audit);
    const result = await runtime.runtime.audit.verify();
    expect(result.ok).toBe(false);
    expect(result.broken?.reason).toMatch(/every entry was removed/);
  });

  it("says it cannot reach Redis instead of waiting for it for ever", async () => {
    t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
    const dir = await mkdtemp(join(tmpdir(), "shipbot-audit-"));
    try {
      // Port 1: nothing listens there. The password must not reach the terminal.
      const env = {
        SHIPBOT_CONFIG: await writeConfig(dir, t.config),
        REDIS_URL: "redis://:s3cret@127.0.0.1:1",
      };
      const runs = ["verify", "export"].map((verb) => spawnShipbot(["audit", verb], env));
      const codes = await Promise.all(
        runs.map((run) => Promise.race([run.exited, sleep(20_000).then(() => "still waiting")])),
      );
      for (const run of runs) run.child.kill();
      expect(codes).toEqual([2, 2]);
      for (const run of runs) {
        expect(run.output()).toContain(
          "shipbot: cannot reach Redis at redis://[redacted]@127.0.0.1:1 (connect ECONNREFUSED",
        );
        expect(run.output()).not.toContain("s3cret");
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("exports JSON Lines and verifies from the command line", async () => {
    const runtime = await withHistory();
    const dir = await mkdtemp(join(tmpdir(), "shipbot-audit-"));
    try {
      const env = { SHIPBOT_CONFIG: await writeConfig(dir, runtime.config), REDIS_URL: redisUrl };
      const exported = spawnShipbot(["audit", "export", "--since", "1h"], env);
      expect(await exported.exited).toBe(0);
      const lines = exported
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"));
      expect(lines.length).toBe((await entries(runtime)).length);
      expect(JSON.parse(lines.at(-1) as string)).toMatchObject({
        type: expect.stringMatching(/^job\./),
        hash: expect.stringMatching(/^[0-9a-f]{40}$/),
      });

      const ok = spawnShipbot(["audit", "verify"], env);
      expect(await ok.exited).toBe(0);
      expect(ok.output()).toMatch(/audit chain intact: \d+ entries/);

      await rewrite(runtime, (_id, flat) =>
        flat.map((v) => (v === "command.denied" ? "command.accepted" : v)),
      );
      const broken = spawnShipbot(["audit", "verify"], env);
      expect(await broken.exited).toBe(1);
      expect(broken.output()).toMatch(/audit chain broken at \d+-\d+: its content does not match its hash/);

      const bad = spawnShipbot(["audit", "export", "--since", "yesterday"], env);
      expect(await bad.exited).toBe(2);
      expect(bad.output()).toContain("--since takes an ISO date");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("parses --since as an ISO date or an age", () => {
    const now = Date.parse("2026-11-23T12:00:00Z");
    expect(parseSince("24h", now)).toBe(Date.parse("2026-11-22T12:00:00Z"));
    expect(parseSince("2026-11-01", now)).toBe(Date.parse("2026-11-01T00:00:00Z"));
    expect(parseSince("2026-11-01T10:00:00Z", now)).toBe(Date.parse("2026-11-01T10:00:00Z"));
    expect(parseSince("soon", now)).toBeUndefined();
    expect(parseSince("2026-13-45", now)).toBeUndefined();
  });
});
