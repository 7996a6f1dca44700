import { serviceListArg } from "./args.ts";
import type { CommandContext, CommandModule, CommandResult } from "./command-module.ts";
import { type Config, type Permission, resolveTarget } from "./config.ts";
import { ShipbotError } from "./errors.ts";
import type { ChatCommand } from "./model.ts";
import { authorize, describeDenial, rolesOf, type Scope } from "./policy.ts";
import { describeUnknown, suggest } from "./suggest.ts";
import { type Tokens, tokenize } from "./tokenize.ts";

export type CommandRegistry = ReadonlyMap<string, CommandModule>;

export interface Routed {
  name: string;
  args: Record<string, unknown>;
  result: CommandResult;
}

function usageError(module: CommandModule, message: string): ShipbotError {
  return new ShipbotError("usage", message, { hint: `usage: ${module.usage}` });
}

/**
 * Built per command on the accept path: a class, so making one is a plain allocation (an object literal
 * with getters is not), and everything most commands do not need is computed on demand.
 */
class Context implements CommandContext {
  readonly config: Config;
  readonly user: ChatCommand["user"];
  readonly conversation: ChatCommand["conversation"];
  readonly now: number;
  readonly #registry: CommandRegistry;

  constructor(command: ChatCommand, config: Config, registry: CommandRegistry, now: number) {
    this.config = config;
    this.user = command.user;
    this.conversation = command.conversation;
    this.now = now;
    this.#registry = registry;
  }

  service(name: string): string {
    const { config } = this;
    if (!Object.hasOwn(config.services, name))
      throw new ShipbotError("usage", describeUnknown("service", name, Object.keys(config.services)));
    return name;
  }

  env(name: string): string {
    const { config } = this;
    if (!Object.hasOwn(config.environments, name))
      throw new ShipbotError("usage", describeUnknown("environment", name, Object.keys(config.environments)));
    return name;
  }

  target(svc: string, e: string) {
    const target = resolveTarget(this.config, this.service(svc), this.env(e));
    if (!target) {
      const where = Object.keys(this.config.services[svc]?.environments ?? {});
      throw new ShipbotError(
        "usage",
        `service \`${svc}\` does not run in \`${e}\`; it runs in: ${where.join(", ")}`,
      );
    }
    return target;
  }

  get commands() {
    return [...this.#registry.values()].map(({ name, summary, usage }) => ({ name, summary, usage }));
  }

  get roles() {
    return rolesOf(this.config, this.user);
  }

  permits(permission: Permission, scope: Scope): boolean {
    return authorize(this.config, this.user, permission, scope).allowed;
  }
}

/**
 * The targets of a fan-out (`deploy api,web staging v2`): every unknown name is a usage error with
 * suggestions, then every target is authorized and any denial refuses the whole command, naming each
 * denied service. A single scope reads exactly as a single-target command.
 */
function checkScopes(
  permission: Permission,
  scopes: Scope[],
  command: ChatCommand,
  config: Config,
  ctx: CommandContext,
): void {
  const unknown: string[] = [];
  for (const scope of scopes) {
    if (scope.service === undefined || scope.service === "*") continue;
    try {
      ctx.service(scope.service);
    } catch (error) {
      if (scopes.length === 1) throw error;
      unknown.push(error instanceof ShipbotError ? error.message : String(error));
    }
  }
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 5).join("; ");
    throw new ShipbotError("usage", unknown.length > 5 ? `${shown}; and ${unknown.length - 5} more` : shown);
  }
  const denied: string[] = [];
  const sufficient = new Set<string>();
  let held: string[] = [];
  for (const scope of scopes) {
    if (scope.env !== undefined) ctx.env(scope.env);
    const decision = authorize(config, command.user, permission, scope);
    if (decision.allowed) continue;
    if (scopes.length === 1) throw new ShipbotError("forbidden", describeDenial(permission, scope, decision));
    denied.push(scope.service ?? "*");
    for (const role of decision.sufficient) sufficient.add(role);
    held = decision.held;
  }
  if (denied.length === 0) return;
  const names =
    denied.length > 10
      ? `${denied.slice(0, 10).join(", ")} and ${denied.length - 10} more`
      : denied.join(", ");
  const env = scopes[0]?.env;
  throw new ShipbotError(
    "forbidden",
    describeDenial(
      permission,
      { service: names, ...(env === undefined ? {} : { env }) },
      {
        allowed: false,
        held,
        sufficient: [...sufficient],
      },
    ),
  );
}

/**
 * An option that takes a value typed without one (`--days`, or `--days 7`, which leaves `7` as a word): it
 * arrives as `true`, and the schema's own complaint ("expected string, received boolean") or the stray word
 * ("too many arguments") would not tell the person what to fix. Checked only once a command is refused
 * anyway, so the accept path pays nothing for it.
 */
function refuseBareValueFlag(module: CommandModule, flags: Tokens["flags"]): void {
  for (const [flag, value] of Object.entries(flags)) {
    if (value !== true || !module.flags.includes(flag)) continue;
    const schema = module.schema.shape[flag];
    if (schema !== undefined && !schema.safeParse(true).success)
      throw usageError(module, `\`--${flag}\` needs a value: \`--${flag}=…\``);
  }
}

/**
 * A list of services typed with spaces around its commas (`deploy api, web staging v2`) arrives as several
 * words, so the list ends in a comma and its other services land in the next arguments. It is refused with
 * the list written as it should be rather than joined silently: after a dangling comma the next word may be
 * the environment (`deploy api, staging v2` most likely means `api` alone), and that guess must not decide
 * what runs. Checked only once a command is refused anyway, so the accept path pays nothing for it.
 */
function refuseSpacedList(module: CommandModule, words: string[], config: Config): void {
  const at = module.positional.findIndex((name) => module.schema.shape[name] === serviceListArg);
  const first = words[at];
  if (at === -1 || first === undefined) return;
  let list = first;
  let next = at + 1;
  for (let word = words[next]; word !== undefined; word = words[++next]) {
    // A comma on either side of the space continues the list, unless what follows is plainly the environment.
    if (!list.endsWith(",") && !word.startsWith(",")) break;
    const isEnvironment = Object.hasOwn(config.environments, word) && !Object.hasOwn(config.services, word);
    if (isEnvironment) break;
    list += word;
  }
  const names = list.split(",").filter((name) => name !== "");
  if (next > at + 1)
    throw usageError(module, `write the list of services without spaces: \`${names.join(",")}\``);
  if (first.endsWith(",") && names.length > 0)
    throw usageError(
      module,
      `\`${first}\` ends with a comma: drop it, or name the next service right after it, without a space`,
    );
}

/**
 * Text → validated arguments → permission check → the command's pure handler. Pure: no I/O, no clock
 * (the caller passes `now`). Every refusal is a ShipbotError whose message is fit for chat.
 */
export function routeCommand(
  command: ChatCommand,
  config: Config,
  registry: CommandRegistry,
  now: number,
): Routed {
  const tokens = tokenize(command.text);
  const module = registry.get(tokens.name);
  if (!module) {
    const guess = suggest(tokens.name, registry.keys());
    const shown = tokens.name.length > 30 ? `${tokens.name.slice(0, 30)}…` : tokens.name;
    throw new ShipbotError(
      "usage",
      guess ? `no command \`${shown}\`; did you mean \`${guess}\`?` : `no command \`${shown}\`; try \`help\``,
    );
  }

  // The words as typed, before a free-text tail is joined into one (for refuseSpacedList).
  const words = tokens.positional;
  if (module.rest && tokens.positional.length > module.positional.length) {
    const keep = module.positional.length - 1;
    tokens.positional = [...tokens.positional.slice(0, keep), tokens.positional.slice(keep).join(" ")];
  }
  if (tokens.positional.length > module.positional.length) {
    refuseSpacedList(module, words, config);
    refuseBareValueFlag(module, tokens.flags);
    const extra = tokens.positional.slice(module.positional.length).join(" ");
    throw usageError(
      module,
      `too many arguments: \`${extra.length > 40 ? `${extra.slice(0, 40)}…` : extra}\``,
    );
  }
  const raw: Record<string, unknown> = {};
  module.positional.forEach((name, i) => {
    const value = tokens.positional[i];
    if (value !== undefined) raw[name] = value;
  });
  for (const [flag, value] of Object.entries(tokens.flags)) {
    if (!module.flags.includes(flag)) {
      const guess = suggest(flag, module.flags);
      throw usageError(
        module,
        `unknown option \`--${flag}\`${guess ? `; did you mean \`--${guess}\`?` : ""}`,
      );
    }
    raw[flag] = value;
  }

  const parsed = module.schema.safeParse(raw);
  if (!parsed.success) {
    refuseSpacedList(module, words, config);
    refuseBareValueFlag(module, tokens.flags);
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? "argument");
    const given = raw[field];
    if (given === undefined) throw usageError(module, `missing <${field}>`);
    const shown = String(given).length > 40 ? `${String(given).slice(0, 40)}…` : String(given);
    throw usageError(module, `\`${shown}\` is not a valid ${field}: ${issue?.message ?? "invalid"}`);
  }
  const args = parsed.data as Record<string, unknown>;
  const ctx = new Context(command, config, registry, now);

  if (module.permission !== null) {
    const scoped = module.scope(args);
    if (Array.isArray(scoped)) checkScopes(module.permission, scoped, command, config, ctx);
    else {
      // Unknown names get "did you mean" before any permission talk.
      if (scoped.service !== undefined && scoped.service !== "*") ctx.service(scoped.service);
      if (scoped.env !== undefined) ctx.env(scoped.env);
      const decision = authorize(config, command.user, module.permission, scoped);
      if (!decision.allowed)
        throw new ShipbotError("forbidden", describeDenial(module.permission, scoped, decision));
    }
  }
  return { name: module.name, args, result: module.run(args, ctx) };
}
