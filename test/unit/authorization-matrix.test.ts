import { describe, expect, it } from "vitest";
import { commandRegistry } from "../../commands/index.ts";
import { isShipbotError } from "../../src/core/errors.ts";
import type { ChatUser } from "../../src/core/model.ts";
import { routeCommand } from "../../src/core/route-command.ts";
import { chatCommand, loadExampleConfig } from "../helpers/example-config.ts";

/**
 * Every mutating and reading command × user × environment of examples/shipbot.yaml, written out by hand
 * from the config (not computed by the code under test): deployer = staging only; sre = everywhere incl.
 * freeze; viewer = read everywhere; nobody = nothing.
 */
const config = loadExampleConfig();
const users: Record<string, ChatUser> = {
  deployer: { id: "slack:U0DEMO0001", name: "dev-1", groups: [] },
  sre: { id: "slack:U0SRE00001", name: "sre-1", groups: [] },
  viewer: { id: "slack:U0VIEWER01", name: "viewer", groups: ["slack:S0EVERYONE"] },
  nobody: { id: "slack:U0NOBODY01", name: "nobody", groups: [] },
};

const commands: Record<string, (env: string) => string> = {
  deploy: (env) => `deploy api ${env} v2`,
  rollback: (env) => `rollback api ${env}`,
  scale: (env) => `scale api ${env} 3`,
  lock: (env) => `lock api ${env} maintenance`,
  unlock: (env) => `unlock api ${env}`,
  freeze: (env) => `freeze ${env} 1h`,
  unfreeze: (env) => `unfreeze ${env}`,
  status: (env) => `status api ${env}`,
  history: (env) => `history api ${env}`,
  queue: (env) => `queue ${env}`,
  dora: (env) => `dora api ${env}`,
};

// allowed[command][user] = [staging, production]
const allowed: Record<string, Record<string, [boolean, boolean]>> = {
  deploy: { deployer: [true, false], sre: [true, true], viewer: [false, false], nobody: [false, false] },
  rollback: { deployer: [true, false], sre: [true, true], viewer: [false, false], nobody: [false, false] },
  scale: { deployer: [true, false], sre: [true, true], viewer: [false, false], nobody: [false, false] },
  lock: { deployer: [true, false], sre: [true, true], viewer: [false, false], nobody: [false, false] },
  unlock: { deployer: [true, false], sre: [true, true], viewer: [false, false], nobody: [false, false] },
  freeze: { deployer: [false, false], sre: [true, true], viewer: [false, false], nobody: [false, false] },
  unfreeze: { deployer: [false, false], sre: [true, true], viewer: [false, false], nobody: [false, false] },
  status: { deployer: [true, false], sre: [true, true], viewer: [true, true], nobody: [false, false] },
  history: { deployer: [true, false], sre: [true, true], viewer: [true, true], nobody: [false, false] },
  queue: { deployer: [true, false], sre: [true, true], viewer: [true, true], nobody: [false, false] },
  dora: { deployer: [true, false], sre: [true, true], viewer: [true, true], nobody: [false, false] },
};

function decide(text: string, user: ChatUser): boolean {
  try {
    routeCommand(chatCommand(text, user), config, commandRegistry, Date.now());
    return true;
  } catch (error) {
    if (isShipbotError(error) && error.code === "forbidden") return false;
    throw error;
  }
}

describe("authorization matrix of the example config", () => {
  for (const [command, text] of Object.entries(commands)) {
    for (const [who, user] of Object.entries(users)) {
      it(`${command} by ${who}`, () => {
        const expected = allowed[command]?.[who];
        expect([decide(text("staging"), user), decide(text("production"), user)]).toEqual(expected);
      });
    }
  }

  it("covers every command that needs a permission", () => {
    const guarded = [...commandRegistry.values()].filter((m) => m.permission !== null).map((m) => m.name);
    expect(guarded.filter((name) => name !== "cancel").sort()).toEqual(Object.keys(commands).sort());
  });

  it("lets a user who leaves a group lose the role at once (groups come with each command)", () => {
    const member = { id: "slack:U0SOMEONE9", name: "x", groups: ["slack:S0SRE"] };
    expect(decide("deploy api production v2", member)).toBe(true);
    expect(decide("deploy api production v2", { ...member, groups: [] })).toBe(false);
  });
});
