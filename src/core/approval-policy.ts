import type { ApprovalPolicy, Config } from "./config.ts";
import type { ChatUser, JobKind } from "./model.ts";
import { rolesOf } from "./policy.ts";

/** The approval an operation needs, or undefined when it may run at once. Pure. */
export function approvalFor(config: Config, env: string, kind: JobKind): ApprovalPolicy | undefined {
  const policy = config.environments[env]?.approval;
  if (!policy || policy.required === 0) return undefined;
  if (kind === "rollback" && policy.rollbacks === "skip") return undefined;
  return policy;
}

/** Why this person may not approve, or undefined when they may. */
export function whyNotApprover(
  config: Config,
  policy: ApprovalPolicy,
  user: ChatUser,
  requesterId: string,
): string | undefined {
  if (policy.forbidRequester && user.id === requesterId)
    return "you asked for this change; someone else must approve it";
  const held = rolesOf(config, user);
  if (!policy.from.some((r) => held.includes(r))) {
    return `approving needs role ${policy.from.map((r) => `\`${r}\``).join(" or ")}; you hold ${held.length ? held.map((r) => `\`${r}\``).join(", ") : "no role"}`;
  }
  return undefined;
}

export function describeApproval(policy: ApprovalPolicy, requester: string, expiresAt: number): string {
  const who = policy.from.join(" or ");
  const not = policy.forbidRequester ? ` (not ${requester})` : "";
  const until = new Date(expiresAt).toISOString().slice(11, 16);
  return `Needs ${policy.required} approval${policy.required > 1 ? "s" : ""} from ${who}${not} · expires ${until} UTC`;
}
