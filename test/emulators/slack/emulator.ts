import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { defaultRateRules, RateLimiter, retryAfterHeader } from "./rate-limits.ts";
import { BodyTooLargeError, findToken, parseArgs, readBody } from "./request.ts";
import type { SlackCall, SlackEmulator, SlackEmulatorOptions } from "./types.ts";
import { botUserId, type MethodResult, teamId, Workspace } from "./workspace.ts";

type Handler = (workspace: Workspace, args: Record<string, unknown>) => MethodResult;

const handlers: Readonly<Record<string, Handler>> = {
  "auth.test": (w) => w.authTest(),
  "chat.postMessage": (w, a) => w.postMessage(a),
  "chat.update": (w, a) => w.update(a),
  "chat.postEphemeral": (w, a) => w.postEphemeral(a),
  "conversations.history": (w, a) => w.history(a),
  "conversations.info": (w, a) => w.conversationInfo(a),
  "conversations.replies": (w, a) => w.replies(a),
  "usergroups.users.list": (w, a) => w.usergroupUsers(a),
  "users.info": (w, a) => w.userInfo(a),
  "views.open": (w, a) => w.viewsOpen(a),
};

interface Fault {
  status: number | "timeout" | "lost";
  remaining: number;
}

/**
 * Starts a Slack Web API emulator on loopback. Point the real client at it with
 * `new WebClient(token, { slackApiUrl: emulator.url + "/api/" })`.
 */
export async function startSlackEmulator(options: SlackEmulatorOptions = {}): Promise<SlackEmulator> {
  const token = options.botToken ?? "xoxb-test-token";
  const timeScale = options.timeScale ?? 1;
  if (!(timeScale > 0)) throw new RangeError("timeScale must be a positive number");
  const now = (): number => performance.now();
  const workspace = new Workspace(options, now);
  const limiter = new RateLimiter({ ...defaultRateRules, ...options.limits }, timeScale, now);
  const limitsOn = options.rateLimits !== false;
  let calls: SlackCall[] = [];
  let faults = new Map<string, Fault>();
  const hanging = new Set<ServerResponse>();

  function record(call: SlackCall): void {
    calls.push(call);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const url = new URL(req.url ?? "/", "http://emulator");
    const hook = /^\/(?:commands|actions)\/[A-Z0-9]+\/([0-9]+\/[0-9a-f]+)$/.exec(url.pathname);
    if (hook?.[1] !== undefined && req.method === "POST") {
      await respond(hook[1], req, res, at);
      return;
    }
    const match = /^\/api\/([A-Za-z0-9_.]+)$/.exec(url.pathname);
    if (match?.[1] === undefined) {
      send(res, 404, { ok: false, error: "not_found" });
      return;
    }
    const method = match[1];
    let body: string;
    try {
      body = await readBody(req);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        send(res, 413, { ok: false, error: "request_too_large" });
        return;
      }
      throw error;
    }
    const contentType = req.headers["content-type"];
    const parsed = parseArgs(url.searchParams, contentType, body);
    const rawArgs = parsed.ok ? parsed.args : {};
    const { token: _ignored, ...args } = rawArgs;
    const call: SlackCall = { method, at, status: 200, ok: false, args };

    const fault = faults.get(method);
    if (fault !== undefined && fault.remaining > 0 && fault.status !== "lost") {
      fault.remaining -= 1;
      if (fault.remaining === 0) faults.delete(method);
      if (fault.status === "timeout") {
        // Never answered and never applied: the client sees its own timeout.
        record({ ...call, status: 0, error: "timeout" });
        hanging.add(res);
        res.on("close", () => hanging.delete(res));
        return;
      }
      const error =
        fault.status === 429 ? "ratelimited" : fault.status === 503 ? "service_unavailable" : "fatal_error";
      record({ ...call, status: fault.status, error });
      const headers: Record<string, string> = fault.status === 429 ? { "retry-after": "1" } : {};
      send(res, fault.status, { ok: false, error }, headers);
      return;
    }

    const answer = (result: MethodResult, status = 200, headers: Record<string, string> = {}): void => {
      if (fault?.status === "lost" && fault.remaining > 0 && status === 200) {
        // Applied (the handler ran), but the answer never reaches the client: it sees its own timeout.
        fault.remaining -= 1;
        if (fault.remaining === 0) faults.delete(method);
        record({ ...call, status: 0, ok: result.ok, error: "timeout" });
        hanging.add(res);
        res.on("close", () => hanging.delete(res));
        return;
      }
      const done: SlackCall = { ...call, status, ok: result.ok };
      if (!result.ok) done.error = result.error;
      if (status === 429) done.retryAfterMs = Number(headers["x-emulator-retry-after-ms"]);
      record(done);
      send(res, status, result, headers);
    };

    const handler = handlers[method];
    if (handler === undefined) return answer({ ok: false, error: "unknown_method" });
    if (!parsed.ok) return answer({ ok: false, error: parsed.error });
    const isJson = (contentType ?? "").toLowerCase().startsWith("application/json");
    const presented = findToken(req.headers.authorization, rawArgs, isJson);
    if (presented === undefined) return answer({ ok: false, error: "not_authed" });
    if (presented !== token) return answer({ ok: false, error: "invalid_auth" });

    if (limitsOn) {
      const channel = typeof args.channel === "string" ? args.channel : "";
      const decision = limiter.take(method, channel);
      if (!decision.allowed) {
        return answer({ ok: false, error: "ratelimited" }, 429, {
          "retry-after": retryAfterHeader(decision.retryAfterMs),
          // Not a Slack header: the exact scaled wait, for tests and benchmarks that want it.
          "x-emulator-retry-after-ms": String(decision.retryAfterMs),
        });
      }
    }
    answer(handler(workspace, args));
  }

  /** A POST to a response_url, recorded as method `response_url` (without the URL, a capability). */
  async function respond(id: string, req: IncomingMessage, res: ServerResponse, at: number): Promise<void> {
    const text = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const { status, result } = workspace.respond(id, body);
    const args = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
    const call: SlackCall = { method: "response_url", at, status, ok: result.ok, args };
    if (!result.ok) call.error = result.error;
    record(call);
    send(res, status, result);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { ok: false, error: "internal_error", detail: String(error) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  return {
    url: `http://${host}:${address.port}`,
    botUserId,
    messages: (channel) => workspace.messages(channel),
    message: (channel, ts) => workspace.message(channel, ts),
    ephemerals: (channel) => workspace.ephemerals(channel),
    views: () => workspace.views(),
    calls: (method) =>
      calls.filter((c) => method === undefined || c.method === method).map((c) => structuredClone(c)),
    rateLimited: (method) =>
      calls.filter((c) => c.status === 429 && (method === undefined || c.method === method)).length,
    failNext(method, status, count = 1) {
      if (count < 1) return;
      faults.set(method, { status, remaining: count });
    },
    addMessage: (input) => workspace.addMessage(input),
    triggerId: (user = options.users?.[0]?.id ?? "U0TESTUSER") => workspace.issueTrigger(user),
    responseUrl: (user, channel, kind = "commands") =>
      `http://${host}:${address.port}/${kind}/${teamId}/${workspace.issueResponseUrl(user, channel)}`,
    reset() {
      workspace.reset();
      limiter.reset();
      calls = [];
      faults = new Map();
    },
    async close() {
      for (const res of hanging) res.destroy();
      hanging.clear();
      await new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      });
    },
  };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}
