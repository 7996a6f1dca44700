import { readFile } from "node:fs/promises";
import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { type Config, configSchema } from "../core/config.ts";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type Path = ReadonlyArray<PropertyKey>;

function describePath(path: Path): string {
  return path.reduce<string>(
    (acc, key) => (typeof key === "number" ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)),
    "",
  );
}

/** The YAML line of a path, for error messages; undefined when the node does not exist. */
function lineOf(doc: ReturnType<typeof parseDocument>, counter: LineCounter, path: Path): number | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth) as unknown[], true) as
      | { range?: [number, number, number] }
      | undefined;
    const range = node && (isMap(node) || isSeq(node) || "range" in node) ? node.range : undefined;
    if (range) return counter.linePos(range[0]).line;
  }
  return undefined;
}

function explain(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}: remove or fix the spelling`;
  }
  if (issue.code === "invalid_key") {
    // zod's own words ("Invalid key in record") say neither which name nor what a valid one looks like.
    const name = String(issue.path.at(-1) ?? "");
    return `the name "${name}" ${issue.issues[0]?.message ?? "is not valid"}`;
  }
  if (issue.code === "invalid_type" && issue.message.includes("received undefined")) {
    return `is required (expected ${issue.expected})`;
  }
  return issue.message;
}

/** Parses and validates shipbot.yaml text. Errors name the YAML path and line and say what to change. */
export function parseConfig(text: string, source = "shipbot.yaml"): Config {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      `${source} is not valid YAML:\n${doc.errors.map((e) => `  ${e.message}`).join("\n")}`,
    );
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (error) {
    // e.g. an alias to an anchor that does not exist: the parser accepts it, building the value does not.
    throw new ConfigError(
      `${source} is not valid YAML: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const result = configSchema.safeParse(value);
  if (!result.success) {
    const lines = result.error.issues.slice(0, 20).map((issue) => {
      const path =
        issue.code === "unrecognized_keys" && issue.keys[0] ? [...issue.path, issue.keys[0]] : issue.path;
      const at = lineOf(doc, counter, path);
      return `  ${describePath(path) || "(top level)"}${at ? ` (line ${at})` : ""}: ${explain(issue)}`;
    });
    throw new ConfigError(`${source} has ${result.error.issues.length} problem(s):\n${lines.join("\n")}`);
  }
  return result.data;
}

export async function loadConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === "ENOENT"
        ? `config file ${path} does not exist: set SHIPBOT_CONFIG to the path of your shipbot.yaml (see examples/shipbot.yaml)`
        : `cannot read config file ${path}: ${code ?? String(error)}`,
    );
  }
  return parseConfig(text, path);
}
