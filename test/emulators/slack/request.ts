import type { IncomingMessage } from "node:http";

/** Large enough for any Block Kit payload Slack accepts; stops a runaway test from filling memory. */
const maxBodyBytes = 2 * 1024 * 1024;

export class BodyTooLargeError extends Error {
  override readonly name = "BodyTooLargeError";
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > maxBodyBytes) throw new BodyTooLargeError(`body over ${maxBodyBytes} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export type ParsedArgs = { ok: true; args: Record<string, unknown> } | { ok: false; error: string };

/**
 * Slack takes arguments as a query string, a form body or a JSON body. A form body carries nested values
 * (blocks, view) as JSON strings; the method handlers decode those themselves, as Slack does.
 */
export function parseArgs(query: URLSearchParams, contentType: string | undefined, body: string): ParsedArgs {
  const args: Record<string, unknown> = Object.fromEntries(query);
  if (body.length === 0) return { ok: true, args };
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type === "application/json") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return { ok: false, error: "invalid_json" };
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return { ok: false, error: "json_not_object" };
    }
    return { ok: true, args: { ...args, ...(parsed as Record<string, unknown>) } };
  }
  if (type === "application/x-www-form-urlencoded" || type === "text/plain" || type === "") {
    return { ok: true, args: { ...args, ...Object.fromEntries(new URLSearchParams(body)) } };
  }
  return { ok: false, error: "invalid_post_type" };
}

/**
 * The token travels in `Authorization: Bearer` or, for form bodies only, as a `token` argument; Slack ignores
 * a token inside a JSON body.
 */
export function findToken(
  authorization: string | undefined,
  args: Record<string, unknown>,
  isJson: boolean,
): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  if (match?.[1] !== undefined) return match[1];
  if (!isJson && typeof args.token === "string" && args.token.length > 0) return args.token;
  return undefined;
}
