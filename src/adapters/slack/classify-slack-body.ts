import { slackSlashCommands } from "./slack-api.ts";

/**
 * What a verified request body is, decided before Bolt sees it: Bolt assumes well-formed payloads
 * (a JSON `null` would throw inside it), so anything malformed stops here with a 400.
 */
export type SlackBodyKind =
  | { kind: "command"; command: string }
  | { kind: "unknown_command"; command: string }
  | { kind: "interaction"; type: string }
  | { kind: "event"; type: string }
  | { kind: "url_verification" }
  | { kind: "ssl_check" }
  /** Well-formed but nothing shipbot listens to: answered 200 so Slack does not retry or show an error. */
  | { kind: "ignored"; type: string }
  | { kind: "malformed"; reason: string };

const known: ReadonlySet<string> = new Set(slackSlashCommands);
/** Names an object has without being given them (`toString`, `__proto__`…): never a Slack id. */
const reservedNames: ReadonlySet<string> = new Set([
  ...Object.getOwnPropertyNames(Object.prototype),
  "prototype",
]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function single(params: URLSearchParams, name: string): string | undefined | null {
  const all = params.getAll(name);
  if (all.length > 1) return null;
  return all[0];
}

/** The bare media type: `application/x-www-form-urlencoded; charset=utf-8` → `application/x-www-form-urlencoded`. */
export function toMediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

export function classifySlackBody(contentType: string | undefined, body: string): SlackBodyKind {
  const type = toMediaType(contentType);
  if (type === "application/x-www-form-urlencoded") {
    const params = new URLSearchParams(body);
    const payload = single(params, "payload");
    const command = single(params, "command");
    if (payload === null || command === null) return { kind: "malformed", reason: "repeated field" };
    if (payload !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(payload);
      } catch {
        return { kind: "malformed", reason: "payload is not JSON" };
      }
      if (!isObject(parsed) || typeof parsed.type !== "string")
        return { kind: "malformed", reason: "payload has no type" };
      if (parsed.type !== "block_actions") return { kind: "ignored", type: parsed.type };
      if (!isObject(parsed.user) || typeof parsed.user.id !== "string" || !Array.isArray(parsed.actions))
        return { kind: "malformed", reason: "block_actions without user or actions" };
      // Bolt reads these as objects when present (found by fuzzing: `"channel": null` crashed it).
      // `"enterprise": null` is what Slack sends outside Enterprise Grid, and Bolt expects it.
      for (const field of ["channel", "container", "team", "message", "view", "enterprise"]) {
        if (field === "enterprise" && parsed[field] === null) continue;
        if (field in parsed && !isObject(parsed[field]))
          return { kind: "malformed", reason: `block_actions field ${field} is not an object` };
      }
      if (!parsed.actions.every((a) => isObject(a) && typeof a.action_id === "string"))
        return { kind: "malformed", reason: "block_actions with an action without an action_id" };
      return { kind: "interaction", type: parsed.type };
    }
    if (command !== undefined) {
      if (!command.startsWith("/")) return { kind: "malformed", reason: "command does not start with /" };
      // Ids that name an object's own machinery (`team_id=__proto__`, `team_id=toString`) broke request
      // handling further in (found by fuzzing); no Slack id looks like that.
      for (const [field, value] of params)
        if (field !== "text" && reservedNames.has(value))
          return { kind: "malformed", reason: `slash command field ${field} is not an id` };
      for (const field of ["user_id", "channel_id"]) {
        const value = single(params, field);
        if (typeof value !== "string" || value === "")
          return { kind: "malformed", reason: `slash command without ${field}` };
      }
      return known.has(command) ? { kind: "command", command } : { kind: "unknown_command", command };
    }
    if (params.get("ssl_check") === "1") return { kind: "ssl_check" };
    return { kind: "malformed", reason: "form body is neither a command nor an interaction" };
  }
  if (type === "application/json") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return { kind: "malformed", reason: "body is not JSON" };
    }
    if (!isObject(parsed) || typeof parsed.type !== "string") return { kind: "malformed", reason: "no type" };
    if (parsed.type === "url_verification") {
      return typeof parsed.challenge === "string"
        ? { kind: "url_verification" }
        : { kind: "malformed", reason: "url_verification without challenge" };
    }
    if (parsed.type === "event_callback") {
      const event = parsed.event;
      if (!isObject(event) || typeof event.type !== "string")
        return { kind: "malformed", reason: "event_callback without event" };
      return { kind: "event", type: event.type };
    }
    return { kind: "ignored", type: parsed.type };
  }
  return { kind: "malformed", reason: `unsupported content type ${type || "(none)"}` };
}
