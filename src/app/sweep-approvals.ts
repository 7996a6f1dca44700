import type { Logger } from "pino";
import { startLoop } from "../core/start-loop.ts";
import type { StatusStore } from "../notify/status-store.ts";
import type { Approvals } from "../queue/approval-scripts.ts";
import type { OpsQueue } from "../queue/ops-queue.ts";

/**
 * Ends requests nobody decided in time (their cards say so), queues approved requests whose approver's
 * process died between the decision and the queue write, and hands the notifier a reminder for each request
 * that expires soon (posted as a reply in its card's thread). Runs in every notifier process; each step is
 * idempotent or claimed atomically (a reminder is claimed once), so two processes sweeping at once do no harm.
 */
export function startApprovalSweeper(deps: {
  approvals: Approvals;
  ops: Pick<OpsQueue, "enqueueData">;
  status: Pick<StatusStore, "read">;
  log: Logger;
  everyMs?: number;
}): { close(): Promise<void> } {
  const sweep = async (): Promise<void> => {
    const reminded = await deps.approvals.remind();
    if (reminded.length > 0) deps.log.info({ jobs: reminded }, "approval reminders handed to the notifier");
    for (const jobId of await deps.approvals.due(Date.now())) {
      const state = await deps.status.read(jobId);
      if (state?.phase === "pending-approval") {
        await deps.approvals.decide(jobId, { id: "shipbot", name: "shipbot" }, "expire");
      } else if (state?.phase === "approved") {
        await deps.ops.enqueueData(jobId, state.data);
        await deps.approvals.forget(jobId);
      } else {
        await deps.approvals.forget(jobId);
      }
    }
  };
  return startLoop(sweep, {
    everyMs: deps.everyMs ?? 1_000,
    onError: (error) => deps.log.warn({ err: error }, "approval sweep failed; will retry"),
  });
}
