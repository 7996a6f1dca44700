import { afterEach, describe, expect, it } from "vitest";
import { createApprovals } from "../../src/queue/approval-scripts.ts";
import { chatCommand, sre } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { startTestRuntime, type TestRuntime, testConfig } from "../helpers/test-runtime.ts";

/**
 * An approval and the queue write after it are two steps. If the process that counted the deciding
 * approval dies between them, the request reads "Approved; queueing" and nothing runs, unless the sweep
 * that every notifier process runs finishes the job: it must queue it once, and it must run once.
 */

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe("an approver's process dies after the decision, before the queue write", () => {
  it("the approval sweep queues the approved request, which runs once", async () => {
    const config = testConfig();
    const production = config.environments.production;
    if (!production?.approval) throw new Error("example config has no production approval");
    config.environments.production = { ...production, approval: { ...production.approval, required: 1 } };
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, config });
    const { redis, keys } = t.runtime;

    const request = await t.runtime.handle(chatCommand("/deploy api production v2", sre(1)));
    const jobId = request.jobIds[0] as string;
    await t.waitForPhase(jobId, ["pending-approval"]);

    // The deciding approval is counted, then its process dies: no queue write follows.
    const decision = await createApprovals(redis, keys).decide(jobId, sre(2), "approve", { roles: ["sre"] });
    expect(decision.outcome).toBe("approved");
    expect((await t.runtime.status.read(jobId))?.text).toBe("Approved; queueing");
    expect(await t.runtime.ops.queue.getJob(jobId)).toBeUndefined();

    // The request stays due for a grace period (10 s) in case the approver is only slow; let it pass.
    expect(await redis.zscore(keys.approvals, jobId)).not.toBeNull();
    await redis.zadd(keys.approvals, 0, jobId);

    const [call] = await gated.started(1);
    expect(call?.target).toMatchObject({ namespace: "production", deployment: "api" });
    call?.finish();
    const done = await t.waitForPhase(jobId, ["succeeded"]);
    expect(done.approvedBy).toBe("sre-2 (sre)");
    expect(await redis.zscore(keys.approvals, jobId)).toBeNull();

    // More sweeps find nothing to do: it ran once.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(gated.calls).toHaveLength(1);
    const ledger = await redis.xrange(keys.audit, "-", "+");
    const of = (type: string) => ledger.filter(([, f]) => f.includes(type) && f.includes(jobId));
    expect(of("job.approved")).toHaveLength(1);
    expect(of("job.succeeded")).toHaveLength(1);
  });
});
