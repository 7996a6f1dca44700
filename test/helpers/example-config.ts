import { readFileSync } from "node:fs";
import { parseConfig } from "../../src/config/load-config.ts";
import type { Config } from "../../src/core/config.ts";
import type { ChatCommand, ChatUser } from "../../src/core/model.ts";

export const exampleConfigPath = new URL("../../examples/shipbot.yaml", import.meta.url).pathname;

export function loadExampleConfig(): Config {
  return parseConfig(readFileSync(exampleConfigPath, "utf8"), exampleConfigPath);
}

export const demoUser: ChatUser = { id: "shell:demo", name: "demo", groups: [] };
export const sreUser: ChatUser = { id: "slack:U0SRE00001", name: "sre-1", groups: [] };
/** The n-th member of the example config's sre group (slack:S0SRE); the example names none of them. */
export const sre = (n: number, extra: Partial<ChatUser> = {}): ChatUser => ({
  id: `slack:U0SRE0000${n}`,
  name: `sre-${n}`,
  groups: ["slack:S0SRE"],
  ...extra,
});
export const stranger: ChatUser = { id: "slack:U0NOBODY01", name: "nobody", groups: [] };

let counter = 0;
export function chatCommand(text: string, user: ChatUser = demoUser, id?: string): ChatCommand {
  counter++;
  return {
    id: id ?? `cmd-${process.pid}-${counter}-${Math.random().toString(36).slice(2)}`,
    user,
    conversation: { platform: "shell", channel: "test" },
    text,
    receivedAt: Date.now(),
  };
}
