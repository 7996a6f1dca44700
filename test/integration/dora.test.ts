import { afterEach, describe, expect, it } from "vitest";
import { computeDora, type LedgerOperation } from "../../src/core/dora.ts";
import { chatCommand } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { startTestRuntime, type TestRuntime } from "../helpers/test-runtime.ts";

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
