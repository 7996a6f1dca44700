import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { commandRegistry } from "../../commands/index.ts";
import { ConfigError, parseConfig } from "../../src/config/load-config.ts";
import { isShipbotError } from "../../src/core/errors.ts";
import { routeCommand } from "../../src/core/route-command.ts";
import { chatCommand, exampleConfigPath, sreUser } from "../helpers/example-config.ts";

const example = readFileSync(exampleConfigPath, "utf8");

/** The example config with api's production entry replaced (its service bounds are min 1, max 10). */
function withProduction(entry: string): string {
  const line = "      production: { namespace: production, replicas: { min: 2, max: 20 } }";
  if (!example.includes(line)) throw new Error("the example config no longer has api's production line");
  return example.replace(line, `      production: ${entry}`);
}

function configProblems(text: string): string {
  try {
    parseConfig(text, "shipbot.yaml");
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error("expected the config to be refused");
}

function scaleRefusal(text: string, replicas: number): string {
  const config = parseConfig(text, "shipbot.yaml");
  try {
    routeCommand(
      chatCommand(`/scale api production ${replicas}`, sreUser),
      config,
      commandRegistry,
      Date.now(),
    );
  } catch (error) {
    if (isShipbotError(error)) return error.message;
    throw error;
  }
  return "accepted";
}

describe("per-environment replica bounds", () => {
  it("override the service's bounds field by field: a min alone keeps the service's max", () => {
    const text = withProduction("{ namespace: production, replicas: { min: 3 } }");
    expect(scaleRefusal(text, 10)).toBe("accepted");
    expect(scaleRefusal(text, 11)).toBe("api in production may run between 3 and 10 replicas, not 11");
    expect(scaleRefusal(text, 2)).toBe("api in production may run between 3 and 10 replicas, not 2");
  });

  it("a max alone keeps the service's min", () => {
    const text = withProduction("{ namespace: production, replicas: { max: 40 } }");
    expect(scaleRefusal(text, 40)).toBe("accepted");
    expect(scaleRefusal(text, 0)).toBe("api in production may run between 1 and 40 replicas, not 0");
  });

  it("refuses a config whose merged min is above its max, naming the field and where the other bound comes from", () => {
    expect(configProblems(withProduction("{ namespace: production, replicas: { min: 30 } }"))).toBe(
      "shipbot.yaml has 1 problem(s):\n" +
        "  services.api.environments.production.replicas.min (line 26): must not be greater than max (10, from services.api.replicas.max); set max here too",
    );
    const text = example.replace("replicas: { min: 1, max: 10 }", "replicas: { min: 5, max: 10 }");
    expect(
      configProblems(
        text.replace(
          "production: { namespace: production, replicas: { min: 2, max: 20 } }",
          "production: { namespace: production, replicas: { max: 4 } }",
        ),
      ),
    ).toBe(
      "shipbot.yaml has 1 problem(s):\n" +
        "  services.api.environments.production.replicas.max (line 26): must not be less than min (5, from services.api.replicas.min); set min here too",
    );
    expect(configProblems(withProduction("{ namespace: production, replicas: { min: 9, max: 8 } }"))).toBe(
      "shipbot.yaml has 1 problem(s):\n" +
        "  services.api.environments.production.replicas.min (line 26): must not be greater than max (8)",
    );
  });
});
