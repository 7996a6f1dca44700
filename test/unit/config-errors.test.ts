import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load-config.ts";
import { exampleConfigPath } from "../helpers/example-config.ts";

const example = readFileSync(exampleConfigPath, "utf8");

/** The message `shipbot config validate` prints for the example file with one change. */
function problems(from: string, to: string): string {
  expect(example).toContain(from);
  try {
    parseConfig(example.replace(from, to), "shipbot.yaml");
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  throw new Error("expected the changed file to be refused");
}

describe("configuration errors", () => {
  it("names a bad environment, service, role or person name and says what a valid one looks like", () => {
    expect(problems("  staging:\n    description:", "  Staging:\n    description:")).toBe(
      [
        "shipbot.yaml has 1 problem(s):",
        `  environments.Staging (line 6): the name "Staging" must be lowercase letters, digits and '-', starting and ending with a letter or digit`,
      ].join("\n"),
    );
    expect(problems("  api:\n    description:", "  api_v2:\n    description:")).toMatch(
      /^ {2}services\.api_v2 \(line \d+\): the name "api_v2" must be lowercase letters, digits and '-'/m,
    );
    expect(problems("  viewer:\n", "  Viewer:\n")).toMatch(
      /^ {2}roles\.Viewer \(line \d+\): the name "Viewer" must be lowercase letters, digits and '-'/m,
    );
    expect(problems('"slack:U0DEMO0001": { github', '"U0DEMO0001": { github')).toMatch(
      /^ {2}people\.U0DEMO0001 \(line \d+\): the name "U0DEMO0001" must be <platform>:<id> with platform slack, teams or shell, e.g\. slack:U024BE7LH$/m,
    );
  });

  it("refuses an incident severity that is not among the severities, which would never start incident mode", () => {
    const file = `${example}\nalerts:\n  severities: [low, high, page]\n`;
    expect(() => parseConfig(file, "shipbot.yaml")).toThrow(
      /alerts\.incidentSeverity.*"critical" is not one of alerts\.severities \(low, high, page\): incident mode would never start/,
    );
    expect(() => parseConfig(`${file}  incidentSeverity: page\n`, "shipbot.yaml")).not.toThrow();
  });
});
