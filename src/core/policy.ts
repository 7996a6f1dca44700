import type { Config, Permission } from "./config.ts";
import type { ChatUser } from "./model.ts";

export interface Scope {
  service?: string;
  env?: string;
}

export interface Decision {
  allowed: boolean;
  /** Roles the user holds (any scope). */
  held: string[];
  /** Roles that would allow this action in this scope. */
  sufficient: string[];
}

export function rolesOf(config: Config, user: ChatUser): string[] {
  // Loops rather than entries/filter/map: this runs for every command on the accept path.
  const held: string[] = [];
  for (const name in config.roles) {
    const role = config.roles[name];
    if (!role || !Object.hasOwn(config.roles, name)) continue;
    if (role.users.includes(user.id) || role.groups.some((g) => user.groups.includes(g))) held.push(name);
  }
  return held;
}

function covers(list: string[], value: string | undefined): boolean {
  // An action without an environment (e.g. `status api`) is covered by a role for any environment.
  // "*" (every service) is covered only by a role for every service.
  if (value === "*") return list.includes("*");
  return value === undefined || list.includes("*") || list.includes(value);
}

/** Role-based check by immutable ids and groups; display names play no part. */
export function authorize(config: Config, user: ChatUser, permission: Permission, scope: Scope): Decision {
  const held = rolesOf(config, user);
  const sufficient: string[] = [];
  for (const name in config.roles) {
    const role = config.roles[name];
    if (!role || !Object.hasOwn(config.roles, name)) continue;
    if (
      role.permissions.includes(permission) &&
      covers(role.environments, scope.env) &&
      covers(role.services, scope.service)
    )
      sufficient.push(name);
  }
  return { allowed: sufficient.some((r) => held.includes(r)), held, sufficient };
}

export function describeDenial(permission: Permission, scope: Scope, decision: Decision): string {
  const where = [scope.service, scope.env].filter(Boolean).join(" in ");
  const action = where ? `${permission} ${where}` : permission;
  const needs =
    decision.sufficient.length === 0
      ? "no role grants that"
      : `needs role ${decision.sufficient.map((r) => `\`${r}\``).join(" or ")}`;
  const has =
    decision.held.length === 0
      ? "you hold no role"
      : `you hold ${decision.held.map((r) => `\`${r}\``).join(", ")}`;
  return `not allowed: ${action} ${needs}; ${has}`;
}
