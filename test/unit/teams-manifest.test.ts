import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { commandRegistry } from "../../commands/index.ts";

const root = new URL("../../", import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(root, "manifests/teams/manifest.json"), "utf8")) as {
  manifestVersion: string;
  icons: { color: string; outline: string };
  bots: Array<{
    botId: string;
    scopes: string[];
    commandLists: Array<{ scopes: string[]; commands: Array<{ title: string; description: string }> }>;
  }>;
};
// The official schemas ship in @microsoft/app-manifest; read from disk, no network.
const require = createRequire(import.meta.url);
type Validate = ((data: unknown) => boolean) & { errors?: unknown[] | null };
interface AjvLike {
  compile(schema: object): Validate;
}
// Both are CommonJS modules whose module.exports is the export itself.
const Ajv = require("ajv-draft-04") as new (options: { allErrors: boolean; strict: boolean }) => AjvLike;
const addFormats = require("ajv-formats") as (ajv: AjvLike) => AjvLike;
const schemaPath = require
  .resolve("@microsoft/app-manifest/package.json")
  .replace(
    /package\.json$/,
    `build/json-schemas/teams/v${manifest.manifestVersion}/MicrosoftTeams.schema.json`,
  );

/** Teams shows at most this many commands per list; people can still type every command. */
const menuLimit = 10;
/** Commands that must be in the menu whatever else is. */
const essentials = ["deploy", "rollback", "scale", "status", "help"];

describe("Teams app manifest", () => {
  it("is valid against the official schema of its manifestVersion", () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    addFormats(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8")) as object);
    const valid = validate(manifest);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
  });

  it("has one bot in every scope, whose command menu lists registered commands with their usage", () => {
    expect(manifest.bots).toHaveLength(1);
    const [bot] = manifest.bots;
    expect(bot?.scopes.sort()).toEqual(["groupChat", "personal", "team"]);
    const [list] = bot?.commandLists ?? [];
    expect(list?.scopes.sort()).toEqual(["groupChat", "personal", "team"]);
    const commands = list?.commands ?? [];
    for (const command of commands) {
      const module = commandRegistry.get(command.title);
      expect(module, `${command.title} is not a registered command`).toBeDefined();
      expect(command.description).toBe(module?.usage);
    }
    const titles = commands.map((c) => c.title);
    expect(new Set(titles).size).toBe(titles.length);
    // Every registered command is in the menu while they fit; beyond Teams' limit the essentials are.
    if (commandRegistry.size <= menuLimit) expect(titles.sort()).toEqual([...commandRegistry.keys()].sort());
    else expect(titles).toHaveLength(menuLimit);
    for (const name of essentials) expect(titles).toContain(name);
  });

  it("ships both icons", () => {
    for (const icon of [manifest.icons.color, manifest.icons.outline]) {
      const png = readFileSync(join(root, "manifests/teams", icon));
      expect(png.subarray(1, 4).toString()).toBe("PNG");
    }
  });
});
