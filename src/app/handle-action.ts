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
import {
  type HistoryEntry,
  newestChange,
  type StatusStore,
  succeededNewestFirst,
} from "../notify/status-store.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Approvals } from "../queue/approval-scripts.ts";
import { toRollbackCommandId } from "../queue/job-id.ts";
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
  status: Pick<StatusStore, "read" | "history">;
  approvals: Approvals;
  audit: AuditLog;
  /** Buttons of alert cards (`alert-*`), handled by src/alerts. */
  alerts?: (action: ChatAction) => Promise<CommandReply>;
  metrics?: Pick<Metrics, "approvalSeconds">;
}

const jobIdPattern = /^j[0-9a-z]{6,20}$/;

/** A target's history keeps its last 50 operations (see transition-lua.ts). */
const historyKept = 50;

const describeOperation = (h: HistoryEntry): string =>
  `${h.kind} ${h.image ?? h.version ?? "of an unknown image"} by ${h.by}`;

/**
 * Why the Roll back of this deploy's card must not run, or undefined when it may. A rollback is
 * `rollout undo`: it undoes the target's newest change, whatever it is, so a card shown before someone
 * deployed or rolled back again would undo their change instead of the one it names.
 */
function whyNotRollBack(
  history: HistoryEntry[],
  jobId: string,
  service: string,
  env: string,
): string | undefined {
  const target = `${service}/${env}`;
  const typed = `run \`rollback ${service} ${env}\``;
  const done = succeededNewestFirst(history);
  const deploy = done.find((h) => h.jobId === jobId);
  if (!deploy)
    return `this deploy is not among the succeeded operations on ${target} (it has not finished, it failed, or it is older than the last ${historyKept}); nothing was done (${typed} to undo the newest change)`;
  const last = newestChange(done);
  if (!last || last.jobId === jobId) return undefined;
  if (last.kind === "rollback")
    return `${target} was already rolled back to ${last.image ?? "an unknown image"} by ${last.by} after this deploy; nothing was done (${typed} to roll back further)`;
  return `${target} changed after this deploy: ${describeOperation(last)}; Roll back here would undo that, so nothing was done (${typed} to undo the newest change)`;
}

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

  /**
   * Roll back on a deploy's card: the history is read again at each click, and the rollback runs only
   * while that deploy is still the target's newest change. It goes through the command path as the
   * clicker, whose own permission (and approval rules) apply there.
   */
  async function rollBack(action: ChatAction): Promise<CommandReply> {
    const data = await deps.ops.find(action.value);
    if (!data) return answer(false, `job ${action.value} is no longer known; use /rollback <service> <env>`);
    if (data.kind !== "deploy")
      return answer(false, `job ${action.value} is a ${data.kind}; only a deploy's card offers Roll back`);
    const history = await deps.status.history(data.service, data.env, historyKept);
    const why = whyNotRollBack(history, action.value, data.service, data.env);
    if (why) return answer(false, why, "conflict");
    const reply = await handle({
      id: toRollbackCommandId(data.service, data.env, action.value, history),
      user: action.user,
      conversation: action.conversation,
      text: `rollback ${data.service} ${data.env}`,
      receivedAt: action.receivedAt,
    });
    return reply.ok ? tellWhenJoined(reply, action, `${data.service}/${data.env}`) : reply;
  }

  /**
   * A click that found the rollback an earlier click made (maybe on another platform, where its card is)
   * gets the answer of a redelivered command, the job id and no card: this clicker is told here instead.
   */
  async function tellWhenJoined(
    reply: CommandReply,
    action: ChatAction,
    target: string,
  ): Promise<CommandReply> {
    const [made] = reply.jobIds;
    if (made === undefined || reply.jobIds.length > 1 || reply.card) return reply;
    const data = await deps.ops.find(made);
    // The clicker's own rollback where they see its card (this click, or a double click): nothing to add.
    const mine =
      data?.requestedBy.id === action.user.id &&
      data.conversation.platform === action.conversation.platform &&
      data.conversation.channel === action.conversation.channel;
    if (!data || mine) return reply;
    const card = createCard(
      "info",
      `${target} is already being rolled back (${made}) by ${data.requestedBy.name}, where its card is; nothing more was queued`,
    );
    return { ...reply, card };
  }

  return async function handleAction(action: ChatAction): Promise<CommandReply> {
    // Alert buttons carry an alert card id, not a job id.
    if (action.action.startsWith("alert-") && deps.alerts) return deps.alerts(action);
    if (!jobIdPattern.test(action.value))
      return answer(false, "that button no longer refers to a job shipbot knows");
    switch (action.action) {
      case "approve":
      case "reject":
        return decide(action, action.action);
      case "cancel":
        return handle({
          id: `button-cancel-${action.value}`,
          user: action.user,
          conversation: action.conversation,
          text: `cancel ${action.value}`,
          receivedAt: action.receivedAt,
        });
      case "rollback":
        return rollBack(action);
      default:
        return answer(false, `unknown action \`${action.action.slice(0, 40)}\``);
    }
  };
}
