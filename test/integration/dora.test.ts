import { afterEach, describe, expect, it } from "vitest";
import { webhookPayloadSchema } from "../../src/alerts/alertmanager-payload.ts";
import { defaultAlertsConfig } from "../../src/alerts/alerts-config.ts";
import { type AlertProcessor, startAlertProcessor } from "../../src/alerts/start-alert-processor.ts";
import { computeDora, type LedgerAlert, type LedgerOperation } from "../../src/core/dora.ts";
import { createGitHubClient } from "../../src/github/index.ts";
import { type GitHubEmulator, startGitHubEmulator } from "../emulators/github/index.ts";
import { chatCommand, sreUser } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { quietLog, startTestRuntime, type TestRuntime, testConfig } from "../helpers/test-runtime.ts";

const hour = 3_600_000;
const now = Date.parse("2026-11-23T12:00:00Z");
const op = (
  hoursAgo: number,
  kind: string,
  phase: "succeeded" | "failed" = "succeeded",
  env = "staging",
): LedgerOperation => ({
  at: now - hoursAgo * hour,
  kind,
  service: "api",
  env,
  phase,
});

/**
 * Seven days of api in staging: deploys 150 h, 100 h, 50 h, 20 h and 2 h ago; the 100 h one was rolled
 * back 30 min later and the 20 h one 3 h later; a failed deploy (not counted) and another service's
 * deploy (not counted) in between; a deploy 200 h ago is outside the window.
 * By hand: 5 deploys → 5/7 = 0.714 a day; 2 of 5 failed → 40%; restore times 30 min and 180 min →
 * median 105 min.
 */
const ledger: LedgerOperation[] = [
  op(200, "deploy"),
  op(150, "deploy"),
  op(100, "deploy"),
  op(99.5, "rollback"),
  op(60, "deploy", "failed"),
  op(50, "deploy"),
  { ...op(30, "deploy"), service: "web" },
  op(20, "deploy"),
  op(17, "rollback"),
  op(2, "deploy"),
  op(1, "deploy", "succeeded", "production"),
];

describe("DORA figures from the ledger", () => {
  it("match the figures computed by hand", () => {
    const d = computeDora(ledger, { service: "api", env: "staging" }, now, 7, 24 * hour);
    expect(d.deploys).toBe(5);
    expect(d.deploysPerDay).toBeCloseTo(5 / 7, 5);
    expect(d.failedChanges).toBe(2);
    expect(d.changeFailureRate).toBeCloseTo(0.4, 5);
    expect(d.medianTimeToRestoreMs).toBe(105 * 60_000);
    expect(computeDora(ledger, { service: "api" }, now, 7, 24 * hour).deploys).toBe(6);
    expect(computeDora(ledger, { service: "api", env: "staging" }, now, 7, 2 * hour).failedChanges).toBe(1);
  });

  describe("the dora command", () => {
    let t: TestRuntime | undefined;
    afterEach(async () => {
      await t?.close();
      t = undefined;
    });

    it("reads the audit ledger and answers with the figures", async () => {
      t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
      const real = Date.now();
      for (const entry of ledger) {
        await t.runtime.audit.append(`job.${entry.phase}`, {
          kind: entry.kind,
          service: entry.service,
          env: entry.env,
          at: String(real - (now - entry.at)),
        });
      }
      const reply = await t.runtime.handle(chatCommand("/dora api staging --days=7"));
      expect(reply.card?.title).toBe("DORA for api in staging, last 7 days");
      expect(reply.card?.lines).toEqual([
        "Deployment frequency: 5 deploys, 0.71 a day",
        "Change failure rate: 40% (2 rolled back within a day)",
        "Time to restore (median): 105 min",
        "Lead time for changes: not recorded (needs GitHub for this service: commit times come from it)",
      ]);
      const bad = await t.runtime.handle(chatCommand("/dora api staging --days=0"));
      expect(bad.error?.message).toBe("`0` is not a valid days: must be at least 1");
    });
  });
});

/**
 * api in production over 7 days, window a day, with commit times and alerts:
 * - D1 150 h ago (committed 152 h ago); a critical alert 120 h ago is 30 h later: outside the window.
 * - D2 100 h ago (committed 106 h ago); critical alert a1 fires 99 h ago, resolves 98.5 h ago.
 * - D3 50 h ago (committed 51 h ago); critical alert a2 fires 49 h ago; rollback 48 h ago; a2 resolves 47 h ago.
 * - D4 20 h ago (no commit time); a warning fires 19 h ago (not critical); rollback 10 h ago.
 * - D5 5 h ago (committed 9 h ago); critical alert a3 fires 4 h ago and still fires.
 * - a critical alert of api in staging 149 h ago belongs to another target.
 * By hand: 5 deploys; failed D2, D3, D5 (alerts) and D4 (rolled back) → 4 of 5 = 80%, 3 by alerts.
 * Restores: D2 30 min (resolved), D3 60 min (rollback before resolve), D4 600 min (deploy → rollback),
 * D5 not restored → median of 30, 60, 600 = 60 min. Lead times 2 h, 6 h, 1 h, 4 h → median 3 h (4 of 5).
 */
const prod = (hoursAgo: number, kind: string, committedHoursAgo?: number): LedgerOperation => ({
  ...op(hoursAgo, kind, "succeeded", "production"),
  ...(committedHoursAgo === undefined ? {} : { committedAt: now - committedHoursAgo * hour }),
});
const prodLedger: LedgerOperation[] = [
  prod(150, "deploy", 152),
  prod(100, "deploy", 106),
  prod(50, "deploy", 51),
  prod(48, "rollback"),
  prod(20, "deploy"),
  prod(10, "rollback"),
  prod(5, "deploy", 9),
];
const alert = (
  fingerprint: string,
  status: "firing" | "resolved",
  hoursAgo: number,
  critical = true,
  env = "production",
): LedgerAlert => ({ fingerprint, service: "api", env, status, at: now - hoursAgo * hour, critical });
const prodAlerts: LedgerAlert[] = [
  alert("a0", "firing", 120),
  alert("a1", "firing", 99),
  alert("a1", "resolved", 98.5),
  alert("a2", "firing", 49),
  alert("a2", "resolved", 47),
  alert("w1", "firing", 19, false),
  alert("a3", "firing", 4),
  alert("s1", "firing", 149, true, "staging"),
];

describe("DORA with alerts and commit times", () => {
  it("counts deploys followed by a critical alert as failed and measures lead time, as computed by hand", () => {
    const d = computeDora(prodLedger, { service: "api", env: "production" }, now, 7, 24 * hour, prodAlerts);
    expect(d.deploys).toBe(5);
    expect(d.failedChanges).toBe(4);
    expect(d.alertFailures).toBe(3);
    expect(d.changeFailureRate).toBeCloseTo(0.8, 5);
    expect(d.medianTimeToRestoreMs).toBe(60 * 60_000);
    expect(d.medianLeadTimeMs).toBe(3 * hour);
    expect(d.leadTimeSamples).toBe(4);
    // Without the alerts only the rollbacks count: D3 (2 h) and D4 (10 h).
    const rollbacksOnly = computeDora(prodLedger, { service: "api", env: "production" }, now, 7, 24 * hour);
    expect(rollbacksOnly.failedChanges).toBe(2);
    expect(rollbacksOnly.medianTimeToRestoreMs).toBe(6 * hour);
  });

  describe("through the ledger", () => {
    let t: TestRuntime | undefined;
    let processor: AlertProcessor | undefined;
    afterEach(async () => {
      await processor?.close();
      processor = undefined;
      await t?.close();
      t = undefined;
    });

    it("reads alerts the alert processor appended and commit times, and answers with the figures", async () => {
      t = await startTestRuntime({ executor: createGatedExecutor().executor, work: false, notify: false });
      processor = startAlertProcessor({
        redis: t.runtime.redis,
        keys: t.runtime.keys,
        config: defaultAlertsConfig,
        log: quietLog,
      });
      const real = Date.now();
      const iso = (at: number) => new Date(real - (now - at)).toISOString();
      for (const entry of prodLedger) {
        await t.runtime.audit.append(`job.${entry.phase}`, {
          kind: entry.kind,
          service: entry.service,
          env: entry.env,
          at: String(real - (now - entry.at)),
          committedAt: entry.committedAt === undefined ? undefined : String(real - (now - entry.committedAt)),
        });
      }
      for (const a of prodAlerts) {
        const firing = prodAlerts.find((f) => f.fingerprint === a.fingerprint && f.status === "firing");
        const payload = webhookPayloadSchema.parse({
          version: "4",
          groupKey: `{}:{alertname="${a.fingerprint}"}`,
          status: a.status,
          receiver: "shipbot",
          groupLabels: {},
          commonLabels: {},
          commonAnnotations: {},
          externalURL: "http://alertmanager.test",
          alerts: [
            {
              status: a.status,
              labels: {
                alertname: `Alert${a.fingerprint}`,
                service: a.service,
                env: a.env,
                severity: a.critical ? "critical" : "warning",
              },
              startsAt: iso(firing?.at ?? a.at),
              endsAt: a.status === "resolved" ? iso(a.at) : "0001-01-01T00:00:00Z",
              fingerprint: a.fingerprint,
            },
          ],
        });
        await processor.process(payload);
        // Alertmanager resends: the ledger keeps one entry per change.
        await processor.process(payload);
      }
      const recorded = (await t.runtime.audit.recent(100)).filter((e) => e.type.startsWith("alert."));
      expect(recorded).toHaveLength(prodAlerts.length);
      expect(
        recorded.find((e) => e.fields.fingerprint === "a1" && e.type === "alert.resolved")?.fields,
      ).toMatchObject({ service: "api", env: "production", severity: "critical", alert: "Alerta1" });

      const reply = await t.runtime.handle(chatCommand("/dora api production --days=7", sreUser));
      expect(reply.card?.lines).toEqual([
        "Deployment frequency: 5 deploys, 0.71 a day",
        "Change failure rate: 80% (1 rolled back, 3 followed by a critical alert within a day)",
        "Time to restore (median): 60 min",
        "Lead time for changes (median): 3 h from commit to deployed, over 4 of 5 deploys",
      ]);
    });
  });
});

describe("lead time recorded by the worker", () => {
  let t: TestRuntime | undefined;
  let gh: GitHubEmulator | undefined;
  afterEach(async () => {
    await t?.close();
    await gh?.close();
    t = undefined;
    gh = undefined;
  });

  it("puts the deployed commit and its time in the deploy's ledger entry", async () => {
    gh = await startGitHubEmulator();
    gh.createRepo("acme/api", { "README.md": "api\n" });
    const committed = new Date(Date.now() - 3 * hour).toISOString().replace(/\.\d{3}Z$/, "Z");
    const sha = gh.commit("acme/api", "main", "Fix the checkout", { date: committed });
    const base = testConfig();
    const api = base.services.api;
    if (!api) throw new Error("example config has no api");
    const config = {
      ...base,
      services: {
        ...base.services,
        api: {
          ...api,
          github: { repo: "acme/api", imageTag: "{sha7}", requiredChecks: [], deployments: false },
        },
      },
    };
    const gated = createGatedExecutor();
    t = await startTestRuntime({
      executor: gated.executor,
      config,
      github: createGitHubClient({
        auth: { kind: "token", token: "ghp_test" },
        baseUrl: gh.url,
        writeSpacingMs: 0,
        notifySpacingMs: 0,
      }),
    });
    const reply = await t.runtime.handle(chatCommand("/deploy api staging main"));
    (await gated.started(1))[0]?.finish();
    await t.waitForPhase(reply.jobIds[0] as string, ["succeeded"]);
    const entry = (await t.runtime.audit.recent(50)).find((e) => e.type === "job.succeeded");
    expect(entry?.fields).toMatchObject({ sha, committedAt: String(Date.parse(committed)) });
    const dora = await t.runtime.handle(chatCommand("/dora api staging"));
    expect(dora.card?.lines.at(-1)).toBe(
      "Lead time for changes (median): 3 h from commit to deployed, over 1 of 1 deploys",
    );
  });
});
