import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createTokenIssuer, type SignActivityTokenOptions, type TokenIssuer } from "./token-issuer.ts";

/**
 * A Bot Framework connector for Teams on loopback, plus the token issuer botbuilder checks inbound
 * tokens against. It records every activity the bot sends, keeps each message's edits, enforces Teams'
 * per-thread rate limits (optionally time-scaled) and can be told to fail the next calls.
 */

export interface RateWindow {
  max: number;
  windowMs: number;
}

/** Teams' documented limits per bot per thread (rate-limit page of the Teams platform docs). */
export const teamsThreadLimits: RateWindow[] = [
  { max: 7, windowMs: 1_000 },
  { max: 8, windowMs: 2_000 },
  { max: 60, windowMs: 30_000 },
  { max: 1_800, windowMs: 3_600_000 },
];

export interface TeamsEmulatorOptions {
  /** The bot's app id: outbound tokens must be issued for it. */
  appId: string;
  /** Refuse bot calls without a valid token from our issuer; default true. */
  requireAuth?: boolean;
  /** Multiplies every rate window (0.05: 20× faster than Teams). Default 1. */
  timeScale?: number;
  limits?: RateWindow[];
}

export interface SentActivity {
  id: string;
  conversationId: string;
  replyToId?: string;
  activity: Record<string, unknown>;
  /** Every version: the first post, then each update. */
  history: Array<Record<string, unknown>>;
}

export interface ConnectorCall {
  method: "POST" | "PUT";
  kind: "send" | "reply" | "update" | "create";
  conversationId: string;
  activityId?: string;
  status: number;
  at: number;
  reason?: string;
}

export interface Fault {
  status: number;
  /** How many calls fail; default 1. */
  times?: number;
  /** Retry-After header value (seconds). */
  retryAfter?: string;
  kind?: ConnectorCall["kind"];
  conversationId?: string;
}

export interface TeamsEmulator {
  url: string;
  /** serviceUrl to put on activities (trailing slash, as Teams sends it). */
  serviceUrl: string;
  openIdMetadataUrl: string;
  issuer: TokenIssuer;
  signActivityToken(options: Omit<SignActivityTokenOptions, "serviceUrl"> & { serviceUrl?: string }): string;
  /** Activities the bot sent, optionally of one conversation (with or without the reply-chain suffix). */
  activities(conversationId?: string): SentActivity[];
  calls(): ConnectorCall[];
  fail(fault: Fault): void;
  close(): Promise<void>;
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
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = "";
  for await (const chunk of req) text += (chunk as Buffer).toString();
  return text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
}

export async function startTeamsEmulator(options: TeamsEmulatorOptions): Promise<TeamsEmulator> {
  const issuer = createTokenIssuer();
  const requireAuth = options.requireAuth ?? true;
  const scale = options.timeScale ?? 1;
  const limits = (options.limits ?? teamsThreadLimits).map((w) => ({
    max: w.max,
    windowMs: w.windowMs * scale,
  }));
  const sent: SentActivity[] = [];
  const byId = new Map<string, SentActivity>();
  const calls: ConnectorCall[] = [];
  const faults: Array<Required<Pick<Fault, "status" | "times">> & Fault> = [];
  const seen = new Map<string, number[]>();
  let next = 1;
  let baseUrl = "";

  /** Milliseconds until the thread may be called again, or 0 (and the call is counted). */
  function throttle(conversationId: string, now: number): number {
    const times = seen.get(conversationId) ?? [];
    const longest = Math.max(...limits.map((w) => w.windowMs));
    while (times.length > 0 && (times[0] as number) <= now - longest) times.shift();
    let wait = 0;
    for (const w of limits) {
      const inWindow = times.filter((t) => t > now - w.windowMs);
      if (inWindow.length >= w.max) wait = Math.max(wait, (inWindow[0] as number) + w.windowMs - now);
    }
    if (wait === 0) times.push(now);
    seen.set(conversationId, times);
    return wait;
  }

  function takeFault(kind: ConnectorCall["kind"], conversationId: string): Fault | undefined {
    const index = faults.findIndex(
      (f) =>
        (f.kind === undefined || f.kind === kind) &&
        (f.conversationId === undefined || f.conversationId === conversationId),
    );
    if (index === -1) return undefined;
    const fault = faults[index] as Required<Pick<Fault, "status" | "times">> & Fault;
    fault.times -= 1;
    if (fault.times <= 0) faults.splice(index, 1);
    return fault;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", baseUrl);
    const path = url.pathname;
    if (req.method === "GET" && path === "/v1/.well-known/openidconfiguration") {
      return send(res, 200, issuer.openIdConfiguration(baseUrl));
    }
    if (req.method === "GET" && path === "/v1/.well-known/keys") return send(res, 200, issuer.jwks());

    const parts = path.split("/").filter((p) => p !== "");
    if (
      parts[0] !== "v3" ||
      parts[1] !== "conversations" ||
      (req.method !== "POST" && req.method !== "PUT")
    ) {
      return send(res, 404, { error: { code: "NotFound", message: `no route ${req.method} ${path}` } });
    }
    const method = req.method;
    const conversationId = parts[2] === undefined ? "" : decodeURIComponent(parts[2]);
    const activityId = parts[4] === undefined ? undefined : decodeURIComponent(parts[4]);
    const kind: ConnectorCall["kind"] =
      parts.length === 2
        ? "create"
        : method === "PUT"
          ? "update"
          : activityId === undefined
            ? "send"
            : "reply";
    const body = await readJson(req);
    const record = (status: number, reason?: string): void => {
      calls.push({
        method,
        kind,
        conversationId,
        ...(activityId === undefined ? {} : { activityId }),
        status,
        at: Date.now(),
        ...(reason === undefined ? {} : { reason }),
      });
    };

    if (requireAuth) {
      const refused = issuer.checkBotToken(req.headers.authorization, options.appId);
      if (refused !== undefined) {
        record(401, refused);
        return send(res, 401, { error: { code: "Unauthorized", message: refused } });
      }
    }
    const fault = takeFault(kind, conversationId);
    if (fault !== undefined) {
      record(fault.status, "injected");
      return send(
        res,
        fault.status,
        { error: { code: "Injected", message: `injected ${fault.status}` } },
        fault.retryAfter === undefined ? {} : { "retry-after": fault.retryAfter },
      );
    }
    if (kind === "create") {
      const id = `a:emulated-${next++}`;
      record(201);
      return send(res, 201, { id, activityId: "" });
    }
    const wait = throttle(conversationId, Date.now());
    if (wait > 0) {
      record(429, "rate limited");
      return send(
        res,
        429,
        { error: { code: "TooManyRequests", message: "rate limited" } },
        { "retry-after": String(Math.max(1, Math.ceil(wait / 1000))) },
      );
    }
    if (kind === "update") {
      const existing = activityId === undefined ? undefined : byId.get(activityId);
      if (existing === undefined || existing.conversationId.split(";")[0] !== conversationId.split(";")[0]) {
        record(404, "unknown activity");
        return send(res, 404, {
          error: { code: "ActivityNotFoundInConversation", message: "unknown activity" },
        });
      }
      existing.activity = body;
      existing.history.push(body);
      record(200);
      return send(res, 200, { id: existing.id });
    }
    const id = `1${String(Date.now()).slice(-9)}${String(next++).padStart(4, "0")}`;
    const activity: SentActivity = {
      id,
      conversationId,
      ...(activityId === undefined ? {} : { replyToId: activityId }),
      activity: body,
      history: [body],
    };
    sent.push(activity);
    byId.set(id, activity);
    record(201);
    return send(res, 201, { id });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { error: { code: "EmulatorError", message: String(error) } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const serviceUrl = `${baseUrl}/`;

  return {
    url: baseUrl,
    serviceUrl,
    openIdMetadataUrl: `${baseUrl}/v1/.well-known/openidconfiguration`,
    issuer,
    signActivityToken: (o) => issuer.signActivityToken({ ...o, serviceUrl: o.serviceUrl ?? serviceUrl }),
    activities(conversationId) {
      if (conversationId === undefined) return [...sent];
      return sent.filter(
        (a) => a.conversationId === conversationId || a.conversationId.split(";")[0] === conversationId,
      );
    },
    calls: () => [...calls],
    fail(fault) {
      faults.push({ ...fault, times: fault.times ?? 1 });
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
