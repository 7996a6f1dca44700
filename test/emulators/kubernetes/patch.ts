/**
 * The three PATCH formats the API server accepts for built-in types, applied to plain JSON.
 * Each throws a PatchError whose `status` says how the server would answer (400 malformed, 422 not applicable).
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export class PatchError extends Error {
  override readonly name = "PatchError";
  readonly status: 400 | 422;
  constructor(status: 400 | 422, message: string) {
    super(message);
    this.status = status;
  }
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Structural equality, key order ignored (as JSON-patch `test` and template comparison need). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && jsonEqual(a[k], b[k]));
  }
  return false;
}

// ---- RFC 6902 JSON Patch ----

function parsePointer(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) throw new PatchError(400, `invalid JSON pointer "${path}"`);
  return path
    .slice(1)
    .split("/")
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function arrayIndex(arr: Json[], token: string, forInsert: boolean): number {
  if (forInsert && token === "-") return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(422, `invalid array index "${token}"`);
  const i = Number(token);
  if (i > arr.length || (!forInsert && i === arr.length)) {
    throw new PatchError(422, `array index ${i} out of bounds`);
  }
  return i;
}

function parentOf(doc: Json, tokens: string[], op: string, path: string): { parent: Json; key: string } {
  let node: Json = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[arrayIndex(node, token, false)] ?? null;
    else if (isObject(node) && token in node) node = node[token] ?? null;
    else
      throw new PatchError(422, `jsonpatch ${op} operation does not apply: doc is missing path: "${path}"`);
  }
  const key = tokens.at(-1);
  if (key === undefined || (!Array.isArray(node) && !isObject(node))) {
    throw new PatchError(422, `jsonpatch ${op} operation does not apply: doc is missing path: "${path}"`);
  }
  return { parent: node, key };
}

function getAt(doc: Json, path: string, op: string): Json {
  let node: Json = doc;
  for (const token of parsePointer(path)) {
    if (Array.isArray(node)) node = node[arrayIndex(node, token, false)] ?? null;
    else if (isObject(node) && token in node) node = node[token] ?? null;
    else
      throw new PatchError(422, `jsonpatch ${op} operation does not apply: doc is missing path: "${path}"`);
  }
  return node;
}

function removeAt(doc: Json, path: string, op: string): Json {
  const { parent, key } = parentOf(doc, parsePointer(path), op, path);
  if (Array.isArray(parent)) {
    const [removed] = parent.splice(arrayIndex(parent, key, false), 1);
    return removed ?? null;
  }
  const obj = parent as JsonObject;
  if (!(key in obj)) {
    throw new PatchError(422, `jsonpatch ${op} operation does not apply: doc is missing key: "${path}"`);
  }
  const removed = obj[key] ?? null;
  delete obj[key];
  return removed;
}

function addAt(doc: Json, path: string, value: Json, op: string, replace: boolean): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(doc, tokens, op, path);
  if (Array.isArray(parent)) {
    if (replace) parent[arrayIndex(parent, key, false)] = value;
    else parent.splice(arrayIndex(parent, key, true), 0, value);
  } else {
    const obj = parent as JsonObject;
    if (replace && !(key in obj)) {
      throw new PatchError(422, `jsonpatch ${op} operation does not apply: doc is missing key: "${path}"`);
    }
    obj[key] = value;
  }
  return doc;
}

export function applyJsonPatch(target: JsonObject, patch: unknown): JsonObject {
  if (!Array.isArray(patch)) throw new PatchError(400, "json patch must be an array of operations");
  let doc: Json = clone(target);
  for (const raw of patch) {
    if (!isObject(raw) || typeof raw.op !== "string" || typeof raw.path !== "string") {
      throw new PatchError(400, "each json patch operation needs string op and path");
    }
    const { op, path } = raw;
    const value = (raw.value ?? null) as Json;
    switch (op) {
      case "add":
        doc = addAt(doc, path, clone(value), op, false);
        break;
      case "replace":
        doc = addAt(doc, path, clone(value), op, true);
        break;
      case "remove":
        removeAt(doc, path, op);
        break;
      case "test":
        if (!jsonEqual(getAt(doc, path, op), value))
          throw new PatchError(422, `testing value ${path} failed`);
        break;
      case "move":
      case "copy": {
        if (typeof raw.from !== "string") throw new PatchError(400, `${op} operation needs from`);
        const moved = op === "move" ? removeAt(doc, raw.from, op) : clone(getAt(doc, raw.from, op));
        doc = addAt(doc, path, moved, op, false);
        break;
      }
      default:
        throw new PatchError(400, `unexpected json patch operation "${op}"`);
    }
  }
  if (!isObject(doc)) throw new PatchError(422, "patch result is not an object");
  return doc;
}

// ---- RFC 7386 JSON Merge Patch ----

export function applyMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const result: JsonObject = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key] ?? null, value);
  }
  return result;
}

// ---- Strategic merge patch (the subset Deployments need) ----

/** Lists merged by a key field instead of replaced, as in the Kubernetes Go types' patchMergeKey tags. */
const mergeKeys: Record<string, string> = {
  containers: "name",
  initContainers: "name",
  ephemeralContainers: "name",
  env: "name",
  volumes: "name",
  volumeMounts: "mountPath",
  volumeDevices: "devicePath",
  imagePullSecrets: "name",
  ports: "containerPort",
  conditions: "type",
  ownerReferences: "uid",
  hostAliases: "ip",
  topologySpreadConstraints: "topologyKey",
};

function mergeKeyedList(field: string, key: string, target: Json[], patch: Json[]): Json[] {
  const result = clone(target);
  for (const item of patch) {
    if (!isObject(item)) throw new PatchError(400, `items of ${field} must be objects`);
    const id = item[key];
    const index = result.findIndex((t) => isObject(t) && jsonEqual(t[key], id));
    const directive = item.$patch;
    if (directive === "delete") {
      if (index >= 0) result.splice(index, 1);
      continue;
    }
    if (directive === "replace") {
      const { $patch: _, ...rest } = item;
      if (index >= 0) result[index] = rest;
      else result.push(rest);
      continue;
    }
    if (index >= 0) result[index] = applyStrategicPatch(result[index] ?? null, item);
    else result.push(applyStrategicPatch(null, item));
  }
  return result;
}

export function applyStrategicPatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === "replace") {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === "delete") return {};
  const result: JsonObject = isObject(target) ? clone(target) : {};
  for (const [field, value] of Object.entries(patch)) {
    // Ordering and key-retention directives only matter for the order of list items; dropping them is safe here.
    if (field.startsWith("$setElementOrder/") || field === "$retainKeys" || field === "$patch") continue;
    if (field.startsWith("$deleteFromPrimitiveList/")) {
      const list = field.slice("$deleteFromPrimitiveList/".length);
      const current = result[list];
      if (Array.isArray(current) && Array.isArray(value)) {
        result[list] = current.filter((v) => !value.some((d) => jsonEqual(d, v)));
      }
      continue;
    }
    if (value === null) {
      delete result[field];
      continue;
    }
    const key = mergeKeys[field];
    const current = result[field];
    if (key !== undefined && Array.isArray(value)) {
      result[field] = mergeKeyedList(field, key, Array.isArray(current) ? current : [], value);
    } else if (isObject(value)) {
      result[field] = applyStrategicPatch(current ?? null, value);
    } else {
      result[field] = clone(value);
    }
  }
  return result;
}
