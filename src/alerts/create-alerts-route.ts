import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { RouteHandler } from "../http/create-http-server.ts";
import { type WebhookPayload, webhookPayloadSchema } from "./alertmanager-payload.ts";

export interface AlertsRouteOptions {
  /** The bearer token Alertmanager's webhook receiver sends (http_config.authorization.credentials). */
  token: string;
  /** Larger bodies get 413 (default 1 MiB). */
  maxBodyBytes?: number;
  /** Stores the payload durably for processing; a throw answers 503 so Alertmanager retries. */
  ingest(payload: WebhookPayload): Promise<void>;
  log: Logger;
}

class BodyTooLarge extends Error {
  override readonly name = "BodyTooLarge";
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new BodyTooLarge("request body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Hashing both sides first gives equal lengths, so the comparison time says nothing about the token. */
function sameToken(expected: Buffer, given: string): boolean {
  const a = createHash("sha256").update(expected).digest();
  const b = createHash("sha256").update(given).digest();
  return timingSafeEqual(a, b);
}

/**
 * `POST /hooks/alertmanager`: checks the bearer token, validates the v4 body and hands it to `ingest`
 * before answering 200. Processing happens elsewhere, so Alertmanager never waits on chat platforms.
 * Every rejection is final (4xx) and stores nothing; only a storage failure answers 5xx (retried).
 */
export function createAlertsRoute(options: AlertsRouteOptions): RouteHandler {
  if (options.token.length < 16)
    throw new Error("the Alertmanager webhook token must be at least 16 characters");
  const expected = Buffer.from(options.token);
  const max = options.maxBodyBytes ?? 1024 * 1024;
  const { log } = options;

  return async (req, res) => {
    const auth = req.headers.authorization ?? "";
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(auth);
    if (!match?.[1] || !sameToken(expected, match[1])) {
      // Drain nothing: the connection is closed so an unauthenticated sender cannot stream a large body.
      send(
        res,
        401,
        { error: "missing or wrong bearer token" },
        { "www-authenticate": "Bearer", connection: "close" },
      );
      return;
    }
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > max) {
      send(res, 413, { error: `body larger than ${max} bytes` }, { connection: "close" });
      return;
    }
    let raw: Buffer;
    try {
      raw = await readBody(req, max);
    } catch (error) {
      if (error instanceof BodyTooLarge) {
        send(res, 413, { error: `body larger than ${max} bytes` }, { connection: "close" });
        return;
      }
      throw error;
    }
    let json: unknown;
    try {
      json = JSON.parse(raw.toString("utf8"));
    } catch {
      send(res, 400, { error: "body is not JSON" });
      return;
    }
    const version = (json as { version?: unknown } | null)?.version;
    if (version !== "4") {
      send(res, 400, {
        error: `unsupported webhook version ${JSON.stringify(version ?? null)}; expected "4"`,
      });
      return;
    }
    const parsed = webhookPayloadSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      send(res, 400, {
        error: `invalid Alertmanager payload at ${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}`,
      });
      return;
    }
    try {
      await options.ingest(parsed.data);
    } catch (error) {
      log.error(
        { err: error, groupKey: parsed.data.groupKey },
        "could not store an Alertmanager notification",
      );
      send(res, 503, { error: "could not store the notification; retry" });
      return;
    }
    send(res, 200, { ok: true });
  };
}
