import type { z } from "zod";
import type { Card } from "./card.ts";
import type { Config, Permission, ResolvedTarget } from "./config.ts";
import type { ChatUser, Conversation, JobKind } from "./model.ts";
import type { Scope } from "./policy.ts";

/** One operation on one target, before it becomes a queued job. */
export interface JobSpec {
  kind: JobKind;
  target: ResolvedTarget;
  version?: string;
  /** deploy: past red checks; only where the environment's approval policy allows it. */
  force?: true;
  /** deploy: during a freeze, with this reason (needs the environment's break-glass approval). */
  breakGlass?: { reason: string };
  revision?: number;
  replicas?: number;
}

export type Query =
  | { kind: "status"; service: string; env?: string }
  | { kind: "history"; service: string; env: string }
  | { kind: "dora"; service: string; env?: string; days: number }
  | { kind: "queue"; env?: string };

export type CommandResult =
  | { type: "reply"; card: Card }
  | {
      type: "jobs";
      jobs: JobSpec[];
      dryRun: boolean;
      /** Services `*` left out because the person may not operate them; shown on the batch card. */
      skipped?: string[];
    }
  | { type: "query"; query: Query }
  | { type: "cancel"; jobId: string }
  | { type: "control"; control: Control };

/** Changes to what may run where: locks on targets and ad hoc freezes of environments. */
export type Control =
  | { kind: "lock"; service: string; env: string; reason?: string }
  | { kind: "unlock"; service: string; env: string }
  | { kind: "freeze"; env: string; until?: number; reason?: string }
  | { kind: "unfreeze"; env: string };

export interface CommandSummary {
  name: string;
  summary: string;
  usage: string;
}

export interface CommandContext {
  config: Config;
  user: ChatUser;
  conversation: Conversation;
  now: number;
  /** Looks up a service×environment, or throws a usage error with a suggestion. */
  target(service: string, env: string): ResolvedTarget;
  /** Checks that a service exists, or throws a usage error with a suggestion. */
  service(name: string): string;
  /** Checks that an environment exists, or throws a usage error with a suggestion. */
  env(name: string): string;
  commands: CommandSummary[];
  roles: string[];
  /** Whether the user holds `permission` there (to expand `*` to the services they may operate). */
  permits(permission: Permission, scope: Scope): boolean;
}

export interface CommandModule<S extends z.ZodObject = z.ZodObject> {
  name: string;
  summary: string;
  /** e.g. `deploy <service> <env> <version> [--dry-run]` */
  usage: string;
  /** Names for the positional words, in order; schema keys. */
  positional: string[];
  /** The last positional takes the rest of the words (a free-text reason). */
  rest?: boolean;
  /** Flags this command accepts (schema keys too). */
  flags: string[];
  schema: S;
  /** The permission needed, or null for commands anyone may run (help, whoami). */
  permission: Permission | null;
  /** Where the permission applies, from the validated arguments; one scope per target of a fan-out. */
  scope(args: z.infer<S>): Scope | Scope[];
  run(args: z.infer<S>, ctx: CommandContext): CommandResult;
}

/** Declares a command with its handler's argument type inferred from the schema. */
export function defineCommand<S extends z.ZodObject>(module: CommandModule<S>): CommandModule<S> {
  return module;
}
