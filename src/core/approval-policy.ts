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

/**
 * Whether the commit authors of this operation may not approve it: only deploys of a service whose code is
 * on GitHub have known commits.
 */
export function forbidsCommitAuthors(
  config: Config,
  policy: ApprovalPolicy,
  kind: JobKind,
  service: string,
): boolean {
  return policy.forbidCommitAuthors && kind === "deploy" && config.services[service]?.github !== undefined;
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

/** The roles of `from` this person holds, in the policy's order: the groups their approval may count for. */
export function approverRoles(config: Config, policy: ApprovalPolicy, user: ChatUser): string[] {
  const held = rolesOf(config, user);
  return policy.from.filter((r) => held.includes(r));
}

/** `login:<github login>` and `email:<address>`, lowercased: how commit authors and approvers are compared. */
export function toIdentityKeys(person: { login?: string; email?: string }): string[] {
  const keys: string[] = [];
  if (person.login) keys.push(`login:${person.login.toLowerCase()}`);
  if (person.email) keys.push(`email:${person.email.toLowerCase()}`);
  return keys;
}

/** Who a chat user is on GitHub: the `people` mapping of the config, and the email the platform gave. */
export function identitiesOf(config: Config, user: ChatUser): string[] {
  const mapped = config.people?.[user.id];
  const keys = [
    ...(mapped?.github ? toIdentityKeys({ login: mapped.github }) : []),
    ...(mapped?.emails ?? []).flatMap((email) => toIdentityKeys({ email })),
    ...(user.email ? toIdentityKeys({ email: user.email }) : []),
  ];
  return [...new Set(keys)];
}

/** Why an approval the decide script refused does not count, in words for the clicker. */
export function describeRefusal(
  policy: ApprovalPolicy,
  refusal: { rule: "author" | "authors-unknown" | "group"; used: string[] },
): string {
  switch (refusal.rule) {
    case "author":
      return "you wrote commits in this change; someone who did not must approve it";
    case "authors-unknown":
      return "the commit authors of this change were not recorded when it was requested; ask for it again";
    case "group": {
      const left = policy.from.filter((r) => !refusal.used.includes(r));
      return `${refusal.used.join(" and ")} already approved; the next approval must come from ${left.join(" or ") || "another role"}`;
    }
  }
}

/** When an undecided request gets its reminder reply: 10 minutes before expiry, or at half-life. */
export function reminderAt(policy: ApprovalPolicy, expiresAt: number): number | undefined {
  const beforeMs =
    policy.remindBeforeMinutes === undefined
      ? Math.min(10 * 60_000, (policy.expiresAfterMinutes * 60_000) / 2)
      : policy.remindBeforeMinutes * 60_000;
  return beforeMs > 0 ? expiresAt - beforeMs : undefined;
}

export function describeApproval(
  policy: ApprovalPolicy,
  requester: string,
  expiresAt: number,
  options: { commitAuthors?: boolean } = {},
): string {
  const count = `${policy.required} approval${policy.required > 1 ? "s" : ""}`;
  let who = ` from ${policy.from.join(" or ")}`;
  if (policy.distinctGroups && policy.required > 1) {
    who =
      policy.required === policy.from.length
        ? `, one each from ${policy.from.slice(0, -1).join(", ")} and ${policy.from.at(-1)}`
        : ` from different roles of ${policy.from.join(", ")}`;
  }
  const not = [
    policy.forbidRequester ? `not ${requester}` : "",
    options.commitAuthors ? "not the commit authors" : "",
  ].filter(Boolean);
  const until = new Date(expiresAt).toISOString().slice(11, 16);
  return `Needs ${count}${who}${not.length ? ` (${not.join(", ")})` : ""} · expires ${until} UTC`;
}
