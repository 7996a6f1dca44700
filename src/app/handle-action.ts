import type { AuditLog } from "../audit/audit-log.ts";
import {
  approvalFor,
  approverRoles,
  describeRefusal,
  forbidsCommitAuthors,
  identitiesOf,
  whyNotApprover,
} from "../core/approval-policy.ts";
import { breakGlassApproval } from "../core/break-glass.ts";
import { createCard } from "../core/card.ts";
import type { Config } from "../core/config.ts";
import { ShipbotError } from "../core/errors.ts";
import type { ChatUser, Conversation } from "../core/model.ts";
import type { StatusStore } from "../notify/status-store.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Approvals } from "../queue/approval-scripts.ts";
import type { OpsQueue } from "../queue/ops-queue.ts";
import type { CommandHandler, CommandReply } from "./handle-command.ts";

/** A button click, normalised by an adapter. The value is untrusted: it is re-checked like typed text. */
export interface ChatAction {
  /** The platform's id for this click (trigger id, invoke id), for logs. */
  id: string;
  user: ChatUser;
  conversation: Conversation;
  action: string;
  value: string;
  receivedAt: number;
}

export interface ActionDeps {
  config: Config;
  ops: Pick<OpsQueue, "find" | "enqueueData">;
  status: Pick<StatusStore, "read">;
  approvals: Approvals;
  audit: AuditLog;
  /** Buttons of alert cards (`alert-*`), handled by src/alerts. */
  alerts?: (action: ChatAction) => Promise<CommandReply>;
  metrics?: Pick<Metrics, "approvalSeconds">;
}

const jobIdPattern = /^j[0-9a-z]{6,20}$/;

function answer(
  ok: boolean,
  message: string,
  code: "usage" | "forbidden" | "conflict" = "usage",
): CommandReply {
  const card = createCard(ok ? "success" : code === "forbidden" ? "warning" : "failure", message);
  return ok
    ? { ok, card, jobIds: [], traceId: "" }
    : { ok, card, jobIds: [], error: new ShipbotError(code, message), traceId: "" };
}

/**
 * Buttons are shortcuts: Cancel and Roll back become the commands they stand for and go through the
 * same parsing and permission checks as typed text. Approve and Reject are decided here, re-authorized
 * against the current configuration from the click's user id, never from what the button carries.
 */
export function createActionHandler(handle: CommandHandler, deps: ActionDeps) {
  async function decide(action: ChatAction, decision: "approve" | "reject"): Promise<CommandReply> {
    const state = await deps.status.read(action.value);
    if (!state) return answer(false, "that approval request no longer exists");
    const data = state.data;
    const policy = data.breakGlass
      ? breakGlassApproval(deps.config, data.env)
      : approvalFor(deps.config, data.env, data.kind);
    if (!policy)
      return answer(
        false,
        `${data.service} in ${data.env} no longer needs approval, so this request cannot be decided: run the command again (this request expires on its own)`,
        "conflict",
      );
    const why = whyNotApprover(deps.config, policy, action.user, data.requestedBy.id);
    if (why) {
      await deps.audit.append("approval.denied", { actor: action.user.id, job: action.value, reason: why });
      return answer(false, `not allowed: ${why}`, "forbidden");
    }
    // The rules that depend on who already approved are decided in the script, atomically with the count.
    const facts =
      decision === "approve"
        ? {
            roles: policy.distinctGroups ? approverRoles(deps.config, policy, action.user) : [],
            identities: identitiesOf(deps.config, action.user),
            checkAuthors: forbidsCommitAuthors(deps.config, policy, data.kind, data.service),
          }
        : {};
    const result = await deps.approvals.decide(action.value, action.user, decision, facts);
    if (result.outcome === "refused") {
      const reason = describeRefusal(policy, result);
      await deps.audit.append("approval.denied", { actor: action.user.id, job: action.value, reason });
      return answer(false, `not allowed: ${reason}`, "forbidden");
    }
    // A click on a request that can no longer be decided is on the ledger too, as a denial.
    const refused = (reason: string) =>
      deps.audit.append("approval.denied", { actor: action.user.id, job: action.value, reason });
    if (result.outcome === "approved" || result.outcome === "rejected") {
      deps.metrics?.approvalSeconds.observe(
        { outcome: result.outcome },
        (Date.now() - data.requestedAt) / 1000,
      );
    }
    switch (result.outcome) {
      case "approved":
        await deps.ops.enqueueData(action.value, data);
        await deps.approvals.forget(action.value);
        return answer(true, `Approved by ${result.names}: ${action.value} is queued`);
      case "counted":
        return answer(true, `Your approval counts: ${result.count} of ${result.need}`);
      case "duplicate":
        return answer(false, "you already approved this request; it needs someone else", "conflict");
      case "rejected":
        return answer(true, `Rejected ${action.value}; nothing will run`);
      case "cancelled":
        return answer(true, `Cancelled ${action.value}; nothing will run`);
      case "expired":
        await refused("this request expired before anyone decided");
        return answer(false, "this request expired before anyone decided; nothing ran", "conflict");
      case "open":
        return answer(false, "nothing was decided", "conflict");
      case "closed":
        await refused(`this request is already ${result.phase}`);
        return answer(false, `this request is already ${result.phase}; nothing changed`, "conflict");
    }
  }

  return async function handleAction(action: ChatAction): Promise<CommandReply> {
    // Alert buttons carry an alert card id, not a job id.
    if (action.action.startsWith("alert-") && deps.alerts) return deps.alerts(action);
    if (!jobIdPattern.test(action.value))
      return answer(false, "that button no longer refers to a job shipbot knows");
    // The same button on the same card means the same operation, whoever clicks and however often:
    // the command id derives from the button, so double clicks and parallel clicks make one job.
    const base = {
      id: `button-${action.action}-${action.value}`,
      user: action.user,
      conversation: action.conversation,
      receivedAt: action.receivedAt,
    };
    switch (action.action) {
      case "approve":
      case "reject":
        return decide(action, action.action);
      case "cancel":
        return handle({ ...base, text: `cancel ${action.value}` });
      case "rollback": {
        const data = await deps.ops.find(action.value);
        if (!data)
          return answer(false, `job ${action.value} is no longer known; use /rollback <service> <env>`);
        return handle({ ...base, text: `rollback ${data.service} ${data.env}` });
      }
      default:
        return answer(false, `unknown action \`${action.action.slice(0, 40)}\``);
    }
  };
}
