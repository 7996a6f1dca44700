import type { IncomingMessage, ServerResponse } from "node:http";
import {
  App,
  type BlockAction,
  type BufferedIncomingMessage,
  type ButtonAction,
  HTTPReceiver,
  type RespondFn,
  SocketModeReceiver,
} from "@slack/bolt";
import type { WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import type { ChatAction } from "../../app/handle-action.ts";
import type { CommandHandler, CommandReply } from "../../app/handle-command.ts";
import { type Card, createCard } from "../../core/card.ts";
import { toShipbotError } from "../../core/errors.ts";
import type { ChatUser, Conversation } from "../../core/model.ts";
import type { RouteHandler } from "../../http/create-http-server.ts";
import { classifySlackBody, toMediaType } from "./classify-slack-body.ts";
import { createGroupResolver } from "./create-group-resolver.ts";
import {
  callSlack,
  createSlackChat,
  createSlackWebClient,
  normaliseApiUrl,
  type SlackChat,
  type SlackPaceOptions,
} from "./create-slack-chat.ts";
import { fromActionId, renderBlocks } from "./render-blocks.ts";
import { actionIdPrefix, type SlackSlashCommand, slackBotEvents, slackSlashCommands } from "./slack-api.ts";
import {
  fromMention,
  fromSlashCommand,
  toConversation,
  toSlackPrincipal,
  withResponseUrl,
} from "./to-chat-command.ts";
import { toSlackLogger } from "./to-slack-logger.ts";
import { verifySlackSignature } from "./verify-slack-signature.ts";

export interface SlackAdapterOptions {
  /** App signing secret (HTTP mode): every request is verified with it. */
  signingSecret: string;
  /** Bot token (xoxb-…). */
  botToken: string;
  /** App-level token (xapp-…, scope connections:write): when set, events arrive over Socket Mode instead of HTTP. */
  appToken?: string;
  /** Web API base URL; default https://slack.com/api/. */
  apiUrl?: string;
  handle: CommandHandler;
  handleAction(action: ChatAction): Promise<CommandReply>;
  log: Logger;
  /** Slack user group ids that grant roles (`S0SRE` or `slack:S0SRE`); see slackGroupIdsOf(config). */
  groupIds: readonly string[];
  /** Our clock in ms, for signature windows and timestamps. */
  clock?: () => number;
  /** How long a user group's member list is trusted; default 5 minutes. */
  groupTtlMs?: number;
  /** Spacing the notifier keeps between Slack calls (scale it down against a time-scaled emulator). */
  pace?: SlackPaceOptions;
  /** Largest request body accepted; default 1 MiB (a button payload carries the whole message). */
  maxBodyBytes?: number;
}

export interface SlackAdapter {
  /** The notifier's way to post and edit cards in Slack. */
  chat: SlackChat;
  /** HTTP routes to mount on our server; empty in Socket Mode. */
  routes: Record<string, RouteHandler>;
  mode: "http" | "socket";
  /** Checks the bot token (auth.test) and, in Socket Mode, opens the connection. Call before serving. */
  start(): Promise<void>;
  /** Stops taking requests and waits for the work already acknowledged to finish. */
  stop(): Promise<void>;
  /** Resolves when the work started by requests so far has finished (tests, shutdown). */
  idle(): Promise<void>;
}

class BodyTooLargeError extends Error {
  override readonly name = "BodyTooLargeError";
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) throw new BodyTooLargeError(`body over ${limit} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

function reply(res: ServerResponse, status: number, body?: unknown, close = false): void {
  const text = body === undefined ? "" : JSON.stringify(body);
  const headers: Record<string, string | number> = { "content-length": Buffer.byteLength(text) };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (close) headers.connection = "close";
  res.writeHead(status, headers);
  res.end(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === "string" ? value : undefined;
}

/**
 * Slack for shipbot, through Bolt. HTTP mode mounts Bolt's own HTTPReceiver request listener on our
 * server (its supported way to share a server), behind a front door that reads the body once with a
 * size limit, verifies the signature with our clock (both directions of the 5-minute window) and
 * refuses malformed payloads, so Bolt only ever sees signed, well-formed requests. Socket Mode uses
 * Bolt's SocketModeReceiver. Either way every interaction is acknowledged first; the work (resolving
 * groups, the command itself, the ephemeral answer) runs after the ack.
 */
export function createSlackAdapter(options: SlackAdapterOptions): SlackAdapter {
  const { log, handle, handleAction } = options;
  const clock = options.clock ?? Date.now;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const mode: SlackAdapter["mode"] = options.appToken ? "socket" : "http";
  const slackLogger = toSlackLogger(log);
  const apiUrl = normaliseApiUrl(options.apiUrl);
  if (mode === "http" && options.signingSecret === "") {
    throw new Error("SLACK_SIGNING_SECRET is empty: HTTP mode cannot verify requests without it");
  }

  const client: WebClient = createSlackWebClient({ botToken: options.botToken, apiUrl, log });
  const chat = createSlackChat(client, {
    ...options.pace,
    postClient: createSlackWebClient({ botToken: options.botToken, apiUrl, log, retries: 0 }),
    now: clock,
  });
  const groups = createGroupResolver({
    groupIds: options.groupIds,
    async listMembers(groupId) {
      const result = await callSlack(client, "usergroups.users.list", { usergroup: groupId });
      const users = (result as { users?: unknown }).users;
      return Array.isArray(users) ? users.filter((u): u is string => typeof u === "string") : [];
    },
    ...(options.groupTtlMs === undefined ? {} : { ttlMs: options.groupTtlMs }),
    now: clock,
    log,
  });

  const clientOptions = {
    slackApiUrl: apiUrl,
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 2_000 },
    timeout: 10_000,
  };
  // Our front door has verified the signature already (with our clock, and refusing future
  // timestamps, which Bolt's check accepts), so Bolt's second check is off.
  const httpReceiver =
    mode === "http"
      ? new HTTPReceiver({
          signingSecret: options.signingSecret,
          signatureVerification: false,
          endpoints: ["/slack/events"],
          logger: slackLogger,
        })
      : undefined;
  const socketReceiver =
    mode === "socket" && options.appToken
      ? new SocketModeReceiver({
          appToken: options.appToken,
          logger: slackLogger,
          installerOptions: { clientOptions },
        })
      : undefined;
  const receiver = httpReceiver ?? socketReceiver;
  if (receiver === undefined) throw new Error("no Slack receiver");
  const app = new App({
    receiver,
    token: options.botToken,
    logger: slackLogger,
    clientOptions,
    // auth.test runs in start(), where a bad token becomes a clear start-up error.
    deferInitialization: true,
    // Bolt's conversation store keeps state in process memory; shipbot keeps none.
    convoStore: false,
  });

  const inflight = new Set<Promise<unknown>>();
  let accepting = false;
  function track(work: Promise<unknown>): Promise<unknown> {
    inflight.add(work);
    const done = (): void => {
      inflight.delete(work);
    };
    work.then(done, done);
    return work;
  }

  async function toUser(userId: string, name: string | undefined): Promise<ChatUser> {
    return { id: toSlackPrincipal(userId), name: name || userId, groups: await groups.groupsOf(userId) };
  }

  /** An answer only the person sees; the response_url is the fallback where the bot cannot post. */
  async function tellPerson(
    conversation: Conversation,
    userId: string,
    card: Card,
    respond: RespondFn | undefined,
  ): Promise<void> {
    try {
      await chat.postEphemeral(conversation, userId, card);
    } catch (error) {
      if (respond === undefined) throw error;
      log.info(
        { err: error, channel: conversation.channel },
        "ephemeral post failed; answering via response_url",
      );
      const { text, blocks } = renderBlocks(card);
      await respond({ response_type: "ephemeral", replace_original: false, text, blocks });
    }
  }

  /** `conversation` is where the person sees the answer, which may differ from where the job's card goes. */
  async function answer(
    conversation: Conversation,
    userId: string,
    work: () => Promise<CommandReply>,
    respond: RespondFn | undefined,
  ): Promise<void> {
    let card: Card | undefined;
    try {
      card = (await work()).card;
    } catch (caught) {
      const error = toShipbotError(caught);
      log.error({ err: caught, user: userId }, "slack request failed after ack");
      card = createCard("failure", error.message);
    }
    if (card === undefined) return;
    try {
      await tellPerson(conversation, userId, card, respond);
    } catch (error) {
      log.warn({ err: error, channel: conversation.channel }, "could not deliver an answer to the person");
    }
  }

  for (const name of slackSlashCommands) {
    app.command(name, async ({ ack, command, respond }) => {
      await ack();
      const receivedAt = clock();
      const conversation = toConversation(command.channel_id, undefined);
      await track(
        answer(
          conversation,
          command.user_id,
          async () =>
            handle({
              // Slack's id for this invocation: a replay of the same request maps to the same job.
              id: command.trigger_id,
              user: await toUser(command.user_id, command.user_name),
              // The job's card falls back to the response_url where the bot cannot post (see createSlackChat).
              conversation: withResponseUrl(conversation, command.response_url, receivedAt),
              text: fromSlashCommand(name as SlackSlashCommand, command.text ?? ""),
              receivedAt,
            }),
          respond,
        ),
      );
    });
  }

  app.event("app_mention", async ({ event, body, context }) => {
    const userId = event.user;
    if (userId === undefined || event.bot_id !== undefined) return;
    const eventId = (body as { event_id?: unknown }).event_id;
    const conversation = toConversation(event.channel, event.thread_ts ?? event.ts);
    await track(
      answer(
        // Slack shows an ephemeral message in a thread only once the thread has replies: a private answer
        // goes into the thread the mention was typed in, else to the channel, where the person looks.
        toConversation(event.channel, event.thread_ts),
        userId,
        async () =>
          handle({
            // The Events API redelivers with the same event_id.
            id: typeof eventId === "string" ? eventId : `${event.channel}-${event.ts}`,
            user: await toUser(userId, undefined),
            conversation,
            text: fromMention(event.text, context.botUserId),
            receivedAt: clock(),
          }),
        undefined,
      ),
    );
  });

  app.action<BlockAction<ButtonAction>>(
    { type: "block_actions", action_id: new RegExp(`^${actionIdPrefix}`) },
    async ({ ack, body, action, respond }) => {
      await ack();
      // The payload is signed but its shape is not guaranteed: take strings only (found by fuzzing).
      const text = (value: unknown): string | undefined =>
        typeof value === "string" && value !== "" ? value : undefined;
      const name = fromActionId(action.action_id);
      const container = body.container as
        | { channel_id?: unknown; message_ts?: unknown; is_ephemeral?: unknown }
        | undefined;
      const channel = text(body.channel?.id) ?? text(container?.channel_id);
      if (name === undefined || channel === undefined) return;
      const messageTs = text(body.message?.ts) ?? text(container?.message_ts);
      // Set when the card is a reply, or a thread parent that has replies: a thread that exists.
      const activeThread = text(body.message?.thread_ts);
      const receivedAt = clock();
      // A job started from a card's button gets its own card in that card's thread. A card shown only to
      // the clicker (where the bot cannot post) has no thread to reply in: the new job's card is shown to
      // them privately too, through this click's response_url.
      const conversation =
        container?.is_ephemeral === true
          ? withResponseUrl(toConversation(channel, undefined), text(body.response_url), receivedAt)
          : toConversation(channel, activeThread ?? messageTs);
      const userId = body.user.id;
      await track(
        answer(
          // As for mentions: in the card's thread only when that thread exists.
          toConversation(channel, activeThread),
          userId,
          async () =>
            handleAction({
              id: text(body.trigger_id) ?? text(action.action_ts) ?? "",
              // The clicker as Slack signed it; never the name on the card.
              user: await toUser(userId, body.user.username),
              conversation,
              action: name,
              value: text(action.value) ?? "",
              receivedAt,
            }),
          respond,
        ),
      );
    },
  );

  app.error(async (error) => {
    log.error({ err: error }, "slack listener failed");
  });

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!accepting || httpReceiver === undefined) {
      reply(res, 503, { error: "shipbot's Slack adapter is not started" });
      return;
    }
    const declared = Number(header(req, "content-length"));
    if (Number.isFinite(declared) && declared > maxBodyBytes) {
      reply(res, 413, { error: "request body too large" }, true);
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req, maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        reply(res, 413, { error: "request body too large" }, true);
        return;
      }
      throw error;
    }
    const contentType = header(req, "content-type");
    const verdict = verifySlackSignature({
      signingSecret: options.signingSecret,
      timestamp: header(req, "x-slack-request-timestamp"),
      signature: header(req, "x-slack-signature"),
      body,
      nowMs: clock(),
    });
    const text = body.toString("utf8");
    if (!verdict.ok) {
      // Slack's certificate probe is unsigned and asks for nothing but a 200.
      if (classifySlackBody(contentType, text).kind === "ssl_check") return reply(res, 200);
      log.warn({ reason: verdict.reason, ip: req.socket.remoteAddress }, "slack request refused: signature");
      return reply(res, 401, { error: "invalid or missing Slack signature" });
    }
    const kind = classifySlackBody(contentType, text);
    switch (kind.kind) {
      case "malformed":
        log.warn({ reason: kind.reason }, "slack request refused: malformed");
        return reply(res, 400, { error: `malformed Slack request: ${kind.reason}` });
      case "ssl_check":
      case "ignored":
        return reply(res, 200);
      case "unknown_command":
        return reply(res, 200, {
          response_type: "ephemeral",
          text: `shipbot does not handle ${kind.command.slice(0, 40)}; try /shipbot help`,
        });
      default:
        break;
    }
    // Bolt matches the bare media type and reuses a body that was already read.
    req.headers["content-type"] = toMediaType(contentType);
    (req as BufferedIncomingMessage).rawBody = body;
    httpReceiver.requestListener(req, res);
  }

  return {
    chat,
    mode,
    routes: mode === "http" ? { "POST /slack/events": handleHttp } : {},
    async start() {
      try {
        await app.init();
      } catch (caught) {
        throw toSlackStartError(caught, apiUrl);
      }
      if (mode === "socket") await app.start();
      accepting = true;
      log.info(
        { mode, events: Object.keys(slackBotEvents), commands: slackSlashCommands },
        "slack adapter started",
      );
    },
    async stop() {
      accepting = false;
      if (mode === "socket") await app.stop();
      await Promise.allSettled([...inflight]);
    },
    async idle() {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
  };
}

function toSlackStartError(caught: unknown, apiUrl: string): Error {
  const code = (caught as { data?: { error?: unknown } }).data?.error;
  const reason = typeof code === "string" ? code : caught instanceof Error ? caught.message : String(caught);
  const tokenProblem = typeof code === "string" && /auth|token|account_inactive/.test(code);
  const fix = tokenProblem
    ? "check SLACK_BOT_TOKEN (the app's xoxb- token) and that the app is installed"
    : "check SLACK_API_URL and the network; in Socket Mode also SLACK_APP_TOKEN (xapp-, scope connections:write)";
  return new Error(`Slack refused to start (${reason}) at ${apiUrl}: ${fix}`, { cause: caught });
}
