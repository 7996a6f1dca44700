import type { CommandModule } from "../src/core/command-module.ts";
import type { CommandRegistry } from "../src/core/route-command.ts";
import cancel from "./cancel.ts";
import deploy from "./deploy.ts";
import dora from "./dora.ts";
import freeze from "./freeze.ts";
import help from "./help.ts";
import history from "./history.ts";
import lock from "./lock.ts";
import queue from "./queue.ts";
import rollback from "./rollback.ts";
import scale from "./scale.ts";
import status from "./status.ts";
import unfreeze from "./unfreeze.ts";
import unlock from "./unlock.ts";
import whoami from "./whoami.ts";

/** Every chat command. Adding one is one file in this folder and one line here. */
const modules = [
  deploy,
  rollback,
  scale,
  status,
  history,
  dora,
  queue,
  cancel,
  lock,
  unlock,
  freeze,
  unfreeze,
  whoami,
  help,
] as unknown as CommandModule[];

export const commandRegistry: CommandRegistry = new Map(modules.map((m) => [m.name, m]));
