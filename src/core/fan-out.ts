import { maxTargets } from "./args.ts";
import type { CommandContext } from "./command-module.ts";
import type { Permission, ResolvedTarget } from "./config.ts";
import { ShipbotError } from "./errors.ts";
import type { Scope } from "./policy.ts";

/** Services named by a command: a list, or `*` for every service of the environment. */
export type ServiceList = string[] | "*";

/**
 * What the router authorizes: each named service in the environment, or for `*` the environment
 * alone (the command then keeps only the services the user may operate). One name gives one scope, so a
 * single-target command is checked and worded exactly as before.
 */
export function toScopes(services: ServiceList, env: string): Scope | Scope[] {
  if (services === "*") return { env };
  if (services.length === 1) return { service: services[0] as string, env };
  return services.map((service) => ({ service, env }));
}

/** `1,000 services`, `1 service`. */
export function countServices(count: number): string {
  return `${count.toLocaleString("en-US")} service${count === 1 ? "" : "s"}`;
}

/**
 * The targets of a fan-out. A named service that does not run in `env` is a usage error; `*` is every
 * service configured in `env` that the user may operate; the others are returned as `skipped`, so the
 * batch card can say what `*` left out. More than `maxTargets` is refused.
 */
export function expandTargets(
  services: ServiceList,
  env: string,
  permission: Permission,
  ctx: CommandContext,
): { targets: ResolvedTarget[]; skipped: string[] } {
  if (services !== "*") return { targets: services.map((service) => ctx.target(service, env)), skipped: [] };
  const configured = Object.entries(ctx.config.services)
    .filter(([, service]) => Object.hasOwn(service.environments, env))
    .map(([name]) => name);
  if (configured.length === 0) throw new ShipbotError("usage", `no service runs in \`${env}\``);
  const allowed = configured.filter((service) => ctx.permits(permission, { service, env }));
  if (allowed.length === 0)
    throw new ShipbotError("forbidden", `not allowed: ${permission} any service in ${env}`);
  if (allowed.length > maxTargets) {
    throw new ShipbotError(
      "usage",
      `\`*\` in ${env} is ${countServices(allowed.length)}; at most ${maxTargets.toLocaleString("en-US")} per command: name them in smaller lists`,
    );
  }
  return {
    targets: allowed.map((service) => ctx.target(service, env)),
    skipped: allowed.length === configured.length ? [] : configured.filter((s) => !new Set(allowed).has(s)),
  };
}
