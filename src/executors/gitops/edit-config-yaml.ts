import { isMap, isScalar, isSeq, parseDocument, parse as parseYaml, type Scalar } from "yaml";
import { ShipbotError } from "../../core/errors.ts";

/** Where shipbot writes in a config file, as the GitOps settings of a target say. */
export type ValueLocation =
  /** The `newTag` of the kustomization `images:` entry whose `name` is `imageName`. */
  | { format: "kustomize-images"; imageName: string; field?: "newTag" }
  /** A dotted path into a YAML file such as Helm values: `image.tag`, `api.replicaCount`, `containers.0.image`. */
  | { format: "yaml-path"; path: string };

type Segment = string | number;

function invalid(file: string, why: string, cause?: unknown): ShipbotError {
  return new ShipbotError("upstream", `${file}: ${why}`, {
    retryable: false,
    ...(cause === undefined ? {} : { cause }),
  });
}

function parse(text: string, file: string) {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw invalid(file, `not valid YAML (${doc.errors[0]?.message.split("\n")[0]})`);
  return doc;
}

/** `a.b.0.c` → ["a", "b", 0, "c"]; numbers index sequences. */
export function toSegments(path: string): Segment[] {
  const parts = path.split(".");
  if (parts.some((p) => p === "")) {
    throw new ShipbotError("usage", `yaml path \`${path}\` has an empty component`, { retryable: false });
  }
  return parts.map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

/** Resolves a location to a concrete path in this document (finding the kustomize images entry). */
function locate(doc: ReturnType<typeof parseDocument>, location: ValueLocation, file: string): Segment[] {
  if (location.format === "yaml-path") return toSegments(location.path);
  const images = doc.get("images", true);
  const index = isSeq(images)
    ? images.items.findIndex((item) => isMap(item) && item.get("name") === location.imageName)
    : -1;
  if (index < 0) {
    throw invalid(
      file,
      `no \`images:\` entry named ${location.imageName}; add one (name: ${location.imageName}, newTag: <current tag>) so shipbot knows where to write`,
    );
  }
  const entry = doc.getIn(["images", index], true);
  if (isMap(entry) && entry.has("digest")) {
    throw invalid(
      file,
      `the images entry for ${location.imageName} pins a digest, which wins over newTag; remove the digest to deploy by tag`,
    );
  }
  return ["images", index, location.field ?? "newTag"];
}

/** A value as the file spells it, and as YAML reads it (`1.10` is spelled 1.10 and read as the number 1.1). */
export interface ConfigScalar {
  text: string;
  value: unknown;
}

/** The current value at `location`, or undefined when it is not set. */
export function readConfigScalar(
  text: string,
  location: ValueLocation,
  file: string,
): ConfigScalar | undefined {
  const doc = parse(text, file);
  const node: unknown = doc.getIn(locate(doc, location, file), true);
  if (node === undefined || node === null) return undefined;
  if (!isScalar(node)) {
    throw invalid(file, `the value at ${describeLocation(location)} is not a plain value`);
  }
  if (node.value === null || node.value === undefined) return undefined;
  return { text: typeof node.source === "string" ? node.source : String(node.value), value: node.value };
}

/**
 * The current value at `location` as the text the file holds, or undefined when it is not set. Text, not
 * the YAML type: an unquoted `tag: 0000000` or `tag: 1.10` names the tag `0000000` or `1.10`, while YAML
 * would read the numbers 0 and 1.1.
 */
export function readConfigValue(text: string, location: ValueLocation, file: string): string | undefined {
  return readConfigScalar(text, location, file)?.text;
}

/**
 * Whether the file already holds `value` for every tool that reads it: as YAML reads it, not only as it is
 * spelled. An unquoted `tag: 1.10` or `newTag: 20240101` is spelled like the tag but read as a number
 * (Helm renders them as 1.1 and 2.0240101e+07), so writing the tag quoted is a real change, not noise.
 */
export function holdsValue(current: ConfigScalar | undefined, value: string | number): boolean {
  return current !== undefined && current.value === value;
}

/** The kustomize entry's effective image name (newName when set): what the cluster will run. */
export function readKustomizeImageName(text: string, imageName: string, file: string): string {
  const doc = parse(text, file);
  const index = locate(doc, { format: "kustomize-images", imageName }, file)[1] as number;
  const newName: unknown = doc.getIn(["images", index, "newName"]);
  return typeof newName === "string" && newName !== "" ? newName : imageName;
}

export function describeLocation(location: ValueLocation): string {
  return location.format === "yaml-path"
    ? location.path
    : `images[name=${location.imageName}].${location.field ?? "newTag"}`;
}

/** Renders `value` in the quoting style the file already used, so the diff is the value alone. */
function render(value: string | number, style: Scalar["type"]): string {
  if (typeof value === "number") return String(value);
  if (style === "QUOTE_SINGLE") return `'${value.replaceAll("'", "''")}'`;
  if (style === "QUOTE_DOUBLE") return JSON.stringify(value);
  // Plain only when it reads back as the same string: `1.10` or `true` would not.
  let readsBack = false;
  try {
    readsBack = parseYaml(value) === value;
  } catch {
    readsBack = false;
  }
  return readsBack && /^[A-Za-z0-9_][A-Za-z0-9_./:@+-]*$/.test(value) ? value : JSON.stringify(value);
}

function sameValue(actual: unknown, wanted: string | number): boolean {
  return actual === wanted;
}

/**
 * Writes `value` at `location` and returns the new text. When the value already exists as a plain or quoted
 * scalar, only its characters are replaced: comments, ordering, indentation and everything else stay
 * byte-for-byte. A missing key is added through the YAML document model (comments kept, layout may be
 * normalised). The result is parsed again and checked to hold exactly `value` before it is returned.
 */
export function writeConfigValue(
  text: string,
  location: ValueLocation,
  value: string | number,
  file: string,
): string {
  const doc = parse(text, file);
  const path = locate(doc, location, file);
  const node = doc.getIn(path, true);
  let out: string;
  if (
    isScalar(node) &&
    node.range &&
    (node.type === "PLAIN" || node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE")
  ) {
    const [start, end] = node.range;
    out = `${text.slice(0, start)}${render(value, node.type)}${text.slice(end)}`;
  } else if (node === undefined || node === null || (isScalar(node) && node.value === null)) {
    try {
      doc.setIn(path, value);
    } catch (error) {
      throw invalid(file, `cannot set ${describeLocation(location)}: a parent is not a mapping`, error);
    }
    out = doc.toString();
  } else {
    throw invalid(
      file,
      `the value at ${describeLocation(location)} is not a plain value; shipbot will not replace it`,
    );
  }
  const check = parse(out, file);
  if (!sameValue(check.getIn(path), value)) {
    throw invalid(
      file,
      `writing ${describeLocation(location)} did not read back as ${String(value)}; nothing was changed`,
    );
  }
  return out;
}
