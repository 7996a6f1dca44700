import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import type { Config } from "../../src/core/config.ts";

export const shipbotBin = new URL("../../src/bin/shipbot.ts", import.meta.url).pathname;

export interface ShipbotProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** Runs the real CLI with the Node that runs the tests (Node 24 from node_modules). */
export function spawnShipbot(args: string[], env: Record<string, string>, input?: string): ShipbotProcess {
  const child = spawn(process.execPath, [shipbotBin, ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  if (input !== undefined) child.stdin?.end(input);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}

export async function writeConfig(dir: string, config: Config): Promise<string> {
  const path = join(dir, "shipbot.yaml");
  await writeFile(path, stringify(config));
  return path;
}
