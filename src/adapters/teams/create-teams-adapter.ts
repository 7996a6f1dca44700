import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Activity,
  CloudAdapter,
  ConfigurationBotFrameworkAuthentication,
  ConfigurationServiceClientCredentialFactory,
  type ConversationReference,
  type InvokeResponse,
  type TurnContext,
} from "botbuilder";
import type { Logger } from "pino";
import type { ChatAction } from "../../app/handle-action.ts";
import type { CommandHandler, CommandReply } from "../../app/handle-command.ts";
import { type Card, createCard } from "../../core/card.ts";
import { toShipbotError } from "../../core/errors.ts";
import type { ChatUser } from "../../core/model.ts";
import type { RouteHandler } from "../../http/create-http-server.ts";
import { type ChatPort, type ChatRateLimitedError, isChatRateLimitedError } from "../../notify/chat-port.ts";
import type { ConversationStore, TeamsConversationReference } from "./conversation-store.ts";
import {
  type CardActivity,
  callTeams,
  createTeamsChat,
  type TeamsConnector,
  type TeamsPaceOptions,
  type TeamsRetryOptions,
  toCardActivity,
} from "./create-teams-chat.ts";
import { renderPlainText } from "./render-adaptive-card.ts";
import {
  fromTeamsText,
  parseCardAction,
  type TeamsEntity,
  toConversation,
  toTeamsPrincipal,
} from "./to-chat-command.ts";

export type TeamsAppType = "MultiTenant" | "SingleTenant" | "UserAssignedMSI";

/**
 * Where the bot's outbound token comes from, instead of MSAL. A test seam only: MSAL refuses an
 * http:// authority and vets hosts online, so tests against a local connector inject a token source.
 * It is a code-level option that no setting can switch on.
 */
export interface TeamsCredentialsFactory {
  getToken(request: { appId: string; audience: string }): Promise<string>;
}

export interface TeamsAdapterOptions {
  /** MicrosoftAppId: the bot's Entra app id; inbound tokens must be issued for it. */
  appId: string;
  /** MicrosoftAppPassword (client secret); not used with UserAssignedMSI. */
  appPassword?: string;
  /** MicrosoftAppType; default MultiTenant. */
  appType?: TeamsAppType;
  /** MicrosoftAppTenantId; required for SingleTenant and UserAssignedMSI, and then the only tenant served. */
  tenantId?: string;
  handle: CommandHandler;
  handleAction(action: ChatAction): Promise<CommandReply>;
  log: Logger;
  /** Conversation references in Redis: how the notifier reaches a conversation from any process. */
  conversationStore: ConversationStore;
  /** Skip Bot Framework authentication entirely (local emulators only). Loudly logged. */
  dangerouslyAllowUnauthenticated?: boolean;
  /** Where Bot Framework signing keys are published; tests point it at a local issuer. */
  openIdMetadataUrl?: string;
  /** Test seam for the outbound token (see TeamsCredentialsFactory). */
  credentialsFactory?: TeamsCredentialsFactory;
  /** Tenants whose users may talk to the bot; default: the tenantId when given, else any. */
  allowedTenantIds?: readonly string[];
  /** Spacing the notifier keeps per conversation (scale it down against a time-scaled emulator). */
  pace?: TeamsPaceOptions;
  retry?: TeamsRetryOptions;
  /** What happens to a direct reply (the answer to a message) that the connector rate-limits. */
  replyRetry?: TeamsReplyRetryOptions;
  /** How long a card click may take before Teams is answered "working on it"; default 3 s (Teams waits ~5 s). */
  invokeBudgetMs?: number;
  /** Largest request body accepted; default 1 MiB. */
  maxBodyBytes?: number;
  clock?: () => number;
}

export interface TeamsReplyRetryOptions {
  /**
   * Longest a person is kept waiting for the answer to their message when the connector answers 429:
   * past it the reply is given up and logged as an error. Default 30 s, which also covers Teams'
   * 30-second per-thread window; a Retry-After beyond it is not waited for at all.
   */
  maxWaitMs?: number;
  /** Sends after the first one; default 3. */
  attempts?: number;
}

export interface TeamsAdapter {
  /** The notifier's way to post and edit cards in Teams. */
  chat: ChatPort;
  routes: Record<string, RouteHandler>;
  start(): Promise<void>;
  /** Stops taking requests and waits for the work already started. */
  stop(): Promise<void>;
  /** Resolves when the work started by requests so far has finished (tests, shutdown). */
  idle(): Promise<void>;
}

/** Public-cloud Bot Framework endpoints, spelled out because setting any one of them means setting all. */
const publicCloud = {
  ToChannelFromBotLoginUrl: "https://login.microsoftonline.com/botframework.com",
  ToChannelFromBotOAuthScope: "https://api.botframework.com",
  ToBotFromChannelTokenIssuer: "https://api.botframework.com",
  OAuthUrl: "https://api.botframework.com",
  ToBotFromChannelOpenIdMetadataUrl: "https://login.botframework.com/v1/.well-known/openidconfiguration",
  ToBotFromEmulatorOpenIdMetadataUrl:
    "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
  CallerId: "urn:botframework:azure",
} as const;

type Credentials = Awaited<ReturnType<ConfigurationServiceClientCredentialFactory["createCredentials"]>>;

/** Keeps botbuilder's checks of app id and auth mode; only the outbound token source is replaced. */
class InjectedCredentialsFactory extends ConfigurationServiceClientCredentialFactory {
  readonly #source: TeamsCredentialsFactory;
  constructor(config: Record<string, string>, source: TeamsCredentialsFactory) {
    super(config);
    this.#source = source;
  }
  override async createCredentials(
    appId: string,
    audience: string,
    loginEndpoint: string,
    validateAuthority: boolean,
  ): Promise<Credentials> {
    if (await this.isAuthenticationDisabled()) {
      return super.createCredentials(appId, audience, loginEndpoint, validateAuthority);
    }
    const source = this.#source;
    const credentials = {
      async signRequest<T extends { headers: { set(name: string, value: string): void } }>(request: T) {
        request.headers.set("authorization", `Bearer ${await source.getToken({ appId, audience })}`);
        return request;
      },
    };
    return credentials as unknown as Credentials;
  }
}

/** CloudAdapter with a way to run a turn for a request we have already authenticated ourselves. */
class ShipbotCloudAdapter extends CloudAdapter {
  runTurn(
    authenticated: Awaited<ReturnType<ConfigurationBotFrameworkAuthentication["authenticateRequest"]>>,
    activity: Activity,
    logic: (context: TurnContext) => Promise<void>,
  ): Promise<InvokeResponse | undefined> {
    return this.processActivity(authenticated, activity, logic);
  }
}

interface ConnectorClientLike {
  conversations: {
    sendToConversation(conversationId: string, activity: Partial<Activity>): Promise<{ id?: string }>;
    replyToActivity(
      conversationId: string,
      activityId: string,
      activity: Partial<Activity>,
    ): Promise<{ id?: string }>;
    updateActivity(conversationId: string, activityId: string, activity: Partial<Activity>): Promise<unknown>;
  };
  client?: { pipeline?: { removePolicy(options: { phase: string }): unknown } };
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

function reply(res: ServerResponse, status: number, body?: unknown): void {
  const text = body === undefined ? "" : JSON.stringify(body);
  const headers: Record<string, string | number> = { "content-length": Buffer.byteLength(text) };
  if (body !== undefined) headers["content-type"] = "application/json";
  res.writeHead(status, headers);
  res.end(text);
}

/**
 * How a failed authentication is answered. Every token problem is 401, including a signature by a key
 * the metadata does not hold: botbuilder lets the signing library's error escape (a 500 from its own
 * HTTP handler), and Teams must not be told the bot is broken when the caller is forged. Only a failure
 * to load the signing keys themselves is 503, so the channel retries.
 */
export function toAuthStatus(error: unknown): 401 | 503 {
  const e = error as { name?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.statusCode === "number" && e.statusCode >= 500) return 503;
  if (e?.name === "FetchError") return 503;
  return 401;
}

function tenantOf(activity: Activity): string | undefined {
  const data = activity.channelData as { tenant?: { id?: unknown } } | undefined;
  const fromData = typeof data?.tenant?.id === "string" ? data.tenant.id : undefined;
  return activity.conversation?.tenantId ?? fromData;
}

/** An activity the bot sends outside a turn of its own, into the conversation `reference` reaches. */
function fromBot(
  reference: TeamsConversationReference,
  conversationId: string,
  activity: CardActivity,
): Partial<Activity> {
  return {
    ...activity,
    channelId: reference.channelId,
    serviceUrl: reference.serviceUrl,
    from: { id: reference.botId, name: reference.botName ?? "" },
    conversation: { id: conversationId, isGroup: reference.isGroup ?? false, conversationType: "", name: "" },
  };
}

/** How to reach the activity's conversation later, or undefined when the activity does not say. */
function toReference(activity: Activity): TeamsConversationReference | undefined {
  const conversationId = activity.conversation?.id;
  const botId = activity.recipient?.id;
  if (!conversationId || !botId || !activity.serviceUrl) return undefined;
  const tenantId = tenantOf(activity);
  return {
    conversationId: toConversation(conversationId).channel,
    serviceUrl: activity.serviceUrl,
    channelId: activity.channelId,
    botId,
    ...(activity.recipient.name ? { botName: activity.recipient.name } : {}),
    ...(tenantId ? { tenantId } : {}),
    ...(activity.conversation.conversationType
      ? { conversationType: activity.conversation.conversationType }
      : {}),
    ...(typeof activity.conversation.isGroup === "boolean" ? { isGroup: activity.conversation.isGroup } : {}),
  };
}

/**
 * `work`, or `fallback` once `ms` have passed, whichever comes first. The timer is cleared as soon as
 * the race is decided: one left pending per card click would pile up under load and keep the process
 * from exiting.
 */
async function raceBudget<T>(work: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(resolve, ms, fallback);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Microsoft Teams for shipbot, through botbuilder's CloudAdapter with configuration-based Bot Framework
 * authentication. Every request is authenticated before any of it is used; the authenticated activity
 * then runs as a CloudAdapter turn. Messages (`@shipbot deploy …` in channels and group chats, plain
 * text in personal chat) go to the command handler and its answer comes back as a reply; Adaptive Card
 * clicks arrive as `adaptiveCard/action` invokes, are answered within Teams' few seconds and go to the
 * action handler, which checks the clicker again. Cards of jobs are posted by the notifier through
 * `chat`, from any process, with the conversation reference saved here in Redis.
 *
 * Everything botbuilder-specific stays in this folder, so moving to the Microsoft 365 Agents SDK
 * replaces this folder only.
 */
export function createTeamsAdapter(options: TeamsAdapterOptions): TeamsAdapter {
  const { log, handle, handleAction, conversationStore } = options;
  const clock = options.clock ?? Date.now;
  const unauthenticated = options.dangerouslyAllowUnauthenticated === true;
  const appType = options.appType ?? "MultiTenant";
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const invokeBudgetMs = options.invokeBudgetMs ?? 3_000;
  if (!unauthenticated && options.appId.trim() === "") {
    throw new Error(
      "MicrosoftAppId is empty: Teams requests cannot be authenticated without it (set SHIPBOT_TEAMS_DANGEROUSLY_ALLOW_UNAUTHENTICATED=true only for a local emulator)",
    );
  }
  if (
    !unauthenticated &&
    appType !== "UserAssignedMSI" &&
    !options.appPassword &&
    !options.credentialsFactory
  ) {
    throw new Error("MicrosoftAppPassword is empty: the bot cannot get a token to post replies and cards");
  }
  if (!unauthenticated && appType !== "MultiTenant" && !options.tenantId) {
    throw new Error(`MicrosoftAppTenantId is required when MicrosoftAppType is ${appType}`);
  }
  const allowedTenants = new Set(
    (options.allowedTenantIds ?? (options.tenantId ? [options.tenantId] : [])).map((t) => t.toLowerCase()),
  );

  // With the switch on, botbuilder sees no app id: it then accepts unsigned requests and sends no token.
  // It must also see MultiTenant: for SingleTenant and UserAssignedMSI it insists on the app id it was
  // just denied, so a deployment that only flips the switch would not start. A configured tenant
  // still filters activities (allowedTenants).
  const authConfig: Record<string, string> = {
    MicrosoftAppId: unauthenticated ? "" : options.appId,
    MicrosoftAppPassword: unauthenticated ? "" : (options.appPassword ?? ""),
    MicrosoftAppType: unauthenticated ? "MultiTenant" : appType,
    MicrosoftAppTenantId: unauthenticated ? "" : (options.tenantId ?? ""),
  };
  if (options.openIdMetadataUrl) {
    Object.assign(authConfig, publicCloud, { ToBotFromChannelOpenIdMetadataUrl: options.openIdMetadataUrl });
  }
  const credentialsFactory = options.credentialsFactory
    ? new InjectedCredentialsFactory(authConfig, options.credentialsFactory)
    : new ConfigurationServiceClientCredentialFactory(authConfig);
  const auth = new ConfigurationBotFrameworkAuthentication(authConfig, credentialsFactory);
  const cloud = new ShipbotCloudAdapter(auth);
  // Our turn logic catches its own errors; this only sees failures inside botbuilder's pipeline.
  cloud.onTurnError = async (_context, error) => {
    log.error({ err: error }, "teams turn failed");
  };

  /**
   * The SDK's HTTP pipeline would retry 429s and 5xx on its own, sleeping through Retry-After inside
   * the call. shipbot decides instead (callTeams, and the notifier for 429), so that policy is removed.
   */
  function connectorOf(context: TurnContext): ConnectorClientLike {
    const client = context.turnState.get(cloud.ConnectorClientKey) as ConnectorClientLike | undefined;
    if (!client) throw new Error("botbuilder gave the turn no connector client");
    client.client?.pipeline?.removePolicy({ phase: "Retry" });
    return client;
  }

  async function inConversation<T>(
    reference: TeamsConversationReference,
    conversationId: string,
    work: (connector: ConnectorClientLike, context: TurnContext) => Promise<T>,
  ): Promise<T> {
    const continuation: Partial<ConversationReference> = {
      channelId: reference.channelId,
      serviceUrl: reference.serviceUrl,
      bot: { id: reference.botId, name: reference.botName ?? "" },
      conversation: {
        id: conversationId,
        isGroup: reference.isGroup ?? false,
        conversationType: reference.conversationType ?? "",
        name: "",
        ...(reference.tenantId ? { tenantId: reference.tenantId } : {}),
      },
    };
    // botbuilder's turn pipeline hands errors to onTurnError; carry the outcome out explicitly instead.
    let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
    await cloud.continueConversationAsync(authConfig.MicrosoftAppId ?? "", continuation, async (context) => {
      try {
        outcome = { ok: true, value: await work(connectorOf(context), context) };
      } catch (error) {
        outcome = { ok: false, error };
      }
    });
    if (outcome === undefined) throw new Error("teams proactive turn did not run");
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  const connector: TeamsConnector = {
    async send(reference, conversationId, activity) {
      return inConversation(reference, conversationId, async (client) => {
        // Sent to the conversation, not as a reply: a proactive turn has no message to reply to.
        const result = await client.conversations.sendToConversation(
          conversationId,
          fromBot(reference, conversationId, activity),
        );
        return result.id ?? "";
      });
    },
    async update(reference, conversationId, activityId, activity) {
      await inConversation(reference, conversationId, async (_client, context) => {
        await context.updateActivity({ ...activity, id: activityId });
      });
    },
  };
  const chat = createTeamsChat({
    connector,
    conversations: conversationStore,
    ...(options.pace ? { pace: options.pace } : {}),
    ...(options.retry ? { retry: options.retry } : {}),
  });

  const inflight = new Set<Promise<unknown>>();
  let accepting = false;
  function track<T>(work: Promise<T>): Promise<T> {
    inflight.add(work);
    const done = (): void => {
      inflight.delete(work);
    };
    work.then(done, done);
    return work;
  }

  async function remember(activity: Activity): Promise<void> {
    const reference = toReference(activity);
    if (reference !== undefined) await conversationStore.save(reference);
  }

  /** The sender as shipbot knows them: the Entra object id, never the display name. */
  function toUser(activity: Activity): ChatUser | undefined {
    const aad = activity.from?.aadObjectId;
    if (typeof aad !== "string" || aad === "") return undefined;
    return { id: toTeamsPrincipal(aad), name: activity.from.name || aad, groups: [] };
  }

  /** Aborted by stop(): a reply still waiting out a Retry-After is then given up, not waited for. */
  const stopping = new AbortController();
  const replyMaxWaitMs = options.replyRetry?.maxWaitMs ?? 30_000;
  const replyAttempts = Math.max(0, options.replyRetry?.attempts ?? 3);

  /** The answer to a message, as a reply to it. */
  async function replyWith(context: TurnContext, card: Card): Promise<void> {
    const activity = toCardActivity(card);
    const conversationId = context.activity.conversation?.id;
    try {
      connectorOf(context);
      await callTeams("reply", () => context.sendActivity(activity as Partial<Activity>), options.retry);
    } catch (error) {
      const reference = toReference(context.activity);
      const replyToId = context.activity.id;
      if (isChatRateLimitedError(error) && reference !== undefined && conversationId && replyToId) {
        // Not awaited: Bot Framework wants the request answered within seconds, and the turn's
        // context is revoked when it ends, so the retry waits outside the turn and sends on its own.
        void track(retryReply({ reference, conversationId, replyToId }, activity, error));
        return;
      }
      logUndelivered(error, conversationId, 1, "the connector call failed");
    }
  }

  function logUndelivered(
    error: unknown,
    conversation: string | undefined,
    sends: number,
    why: string,
  ): void {
    // The person who asked never sees the answer, so an operator has to hear of it.
    log.error(
      { err: error, conversation, sends },
      `could not deliver a Teams reply (${why}); the person got no answer`,
    );
  }

  /**
   * Sends a rate-limited reply again after the connector's Retry-After, as Teams asks of 429s, with a
   * little jitter so replies held back together do not all return at once, for as long as a person
   * waits for an answer (replyRetry.maxWaitMs). A Retry-After beyond that is not waited for.
   */
  async function retryReply(
    target: { reference: TeamsConversationReference; conversationId: string; replyToId: string },
    activity: CardActivity,
    rateLimited: ChatRateLimitedError,
  ): Promise<void> {
    const deadline = clock() + replyMaxWaitMs;
    let lastError: unknown = rateLimited;
    let waitMs = rateLimited.retryAfterMs;
    let sends = 1;
    const giveUp = (why: string) => logUndelivered(lastError, target.conversationId, sends, why);
    for (;;) {
      if (sends - 1 >= replyAttempts) return giveUp(`rate limited after ${sends} sends`);
      const room = deadline - clock() - waitMs;
      if (room < 0)
        return giveUp(`Teams asked to wait ${waitMs} ms, past the ${replyMaxWaitMs} ms a person waits`);
      const jitter = Math.floor(Math.random() * Math.min(waitMs / 4, room));
      try {
        await sleep(waitMs + jitter, undefined, { signal: stopping.signal });
      } catch {
        return giveUp("shipbot stopped while it waited");
      }
      sends += 1;
      try {
        const { reference, conversationId, replyToId } = target;
        await callTeams(
          "reply",
          () => sendReply(reference, conversationId, replyToId, activity),
          options.retry,
        );
        log.info({ conversation: conversationId, sends }, "teams reply delivered after a 429");
        return;
      } catch (error) {
        lastError = error;
        if (!isChatRateLimitedError(error)) return giveUp("the connector call failed");
        waitMs = error.retryAfterMs;
      }
    }
  }

  /** A reply outside the turn it answers (which has ended): a proactive turn replying to the message. */
  async function sendReply(
    reference: TeamsConversationReference,
    conversationId: string,
    replyToId: string,
    activity: CardActivity,
  ): Promise<void> {
    await inConversation(reference, conversationId, async (client) => {
      await client.conversations.replyToActivity(conversationId, replyToId, {
        ...fromBot(reference, conversationId, activity),
        replyToId,
      });
    });
  }

  async function onMessage(context: TurnContext): Promise<void> {
    const activity = context.activity;
    if (activity.from?.role === "bot" || activity.from?.id === activity.recipient?.id) return;
    // Action.Submit posts come as messages with a value and no text; shipbot's cards never send them.
    if (!activity.text && activity.value !== undefined) return;
    const user = toUser(activity);
    if (user === undefined) {
      await replyWith(
        context,
        createCard(
          "warning",
          "shipbot needs your Microsoft Entra identity, which this message did not carry",
        ),
      );
      return;
    }
    let card: Card | undefined;
    try {
      const answer = await handle({
        // Scoped to the conversation: Teams promises activity ids unique within one. A redelivery
        // carries the same id and maps to the job it already made.
        id: `${activity.conversation.id}|${activity.id ?? randomUUID()}`,
        user,
        conversation: toConversation(activity.conversation.id),
        text: fromTeamsText(
          activity.text,
          activity.entities as TeamsEntity[] | undefined,
          activity.recipient?.id,
        ),
        receivedAt: clock(),
      });
      card = answer.card;
    } catch (caught) {
      log.error({ err: caught, activity: activity.id }, "teams command failed");
      card = createCard("failure", toShipbotError(caught).message);
    }
    if (card !== undefined) await replyWith(context, card);
  }

  function invokeAnswer(context: TurnContext, status: number, body: unknown): Promise<unknown> {
    return context.sendActivity({ type: "invokeResponse", value: { status, body } } as Partial<Activity>);
  }

  const messageResponse = (text: string) => ({
    statusCode: 200,
    type: "application/vnd.microsoft.activity.message",
    value: text,
  });

  function describeOutcome(outcome: CommandReply): string {
    if (outcome.card) return renderPlainText(outcome.card, 1000);
    if (outcome.ok && outcome.jobIds.length > 3)
      return `On it: ${outcome.jobIds.length} jobs; one card will follow.`;
    if (outcome.ok && outcome.jobIds.length > 0)
      return `On it: job ${outcome.jobIds.join(", ")}; the card will follow.`;
    return outcome.ok ? "Done." : (outcome.error?.message ?? "That did not work.");
  }

  async function onCardAction(context: TurnContext): Promise<void> {
    const activity = context.activity;
    const parsed = parseCardAction(activity.value);
    if (!parsed.ok) {
      await invokeAnswer(context, 400, {
        statusCode: 400,
        type: "application/vnd.microsoft.error",
        value: { code: "BadRequest", message: parsed.reason },
      });
      return;
    }
    const user = toUser(activity);
    if (user === undefined) {
      await invokeAnswer(
        context,
        200,
        messageResponse("shipbot needs your Microsoft Entra identity to act on this"),
      );
      return;
    }
    const work = track(
      handleAction({
        id: activity.id ?? randomUUID(),
        // The clicker as Teams signed it; the card's own text proves nothing.
        user,
        conversation: toConversation(activity.conversation.id),
        action: parsed.verb,
        value: parsed.value,
        receivedAt: clock(),
      }).then(
        (outcome) => describeOutcome(outcome),
        (caught: unknown) => {
          log.error({ err: caught, activity: activity.id }, "teams card action failed");
          return toShipbotError(caught).message;
        },
      ),
    );
    // Teams gives an invoke a few seconds; slower work goes on and the card shows its result.
    const text = await raceBudget(
      work,
      invokeBudgetMs,
      "Working on it; the card will update when it is done.",
    );
    await invokeAnswer(context, 200, messageResponse(text));
  }

  async function onTurn(context: TurnContext): Promise<void> {
    const activity = context.activity;
    const tenant = tenantOf(activity)?.toLowerCase();
    if (allowedTenants.size > 0 && (tenant === undefined || !allowedTenants.has(tenant))) {
      log.warn(
        { tenant, activity: activity.id, type: activity.type },
        "teams activity from a tenant not allowed",
      );
      if (activity.type === "invoke") {
        await invokeAnswer(context, 200, messageResponse("this Microsoft Teams tenant may not use shipbot"));
      }
      return;
    }
    try {
      await remember(activity);
    } catch (error) {
      log.warn({ err: error }, "could not store the Teams conversation reference");
    }
    if (activity.type === "message") await onMessage(context);
    else if (activity.type === "invoke" && activity.name === "adaptiveCard/action")
      await onCardAction(context);
    // Other activities (installs, member changes) only refresh the stored reference.
  }

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!accepting) return reply(res, 503, { error: "shipbot's Teams adapter is not started" });
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > maxBodyBytes)
      return reply(res, 413, { error: "request body too large" });
    let body: Buffer;
    try {
      body = await readBody(req, maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) return reply(res, 413, { error: "request body too large" });
      throw error;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      return reply(res, 400, { error: "body is not JSON" });
    }
    if (
      !isObject(parsed) ||
      typeof parsed.type !== "string" ||
      typeof parsed.serviceUrl !== "string" ||
      !isObject(parsed.conversation) ||
      typeof parsed.conversation.id !== "string"
    ) {
      return reply(res, 400, { error: "not a Bot Framework activity" });
    }
    const activity = parsed as unknown as Activity;
    const header = req.headers.authorization;
    let authenticated: Awaited<ReturnType<typeof auth.authenticateRequest>>;
    try {
      authenticated = await auth.authenticateRequest(activity, typeof header === "string" ? header : "");
    } catch (error) {
      const status = toAuthStatus(error);
      const reason = error instanceof Error ? error.message : String(error);
      log.warn(
        { status, reason, ip: req.socket.remoteAddress, type: activity.type },
        "teams request refused",
      );
      return reply(res, status, { error: status === 401 ? "unauthorized" : "signing keys unavailable" });
    }
    const invoke = await track(cloud.runTurn(authenticated, activity, onTurn));
    return reply(res, invoke?.status ?? 200, invoke?.body);
  }

  return {
    chat,
    routes: { "POST /api/messages": handleHttp },
    async start() {
      if (unauthenticated) {
        log.warn(
          "TEAMS AUTHENTICATION IS OFF (dangerouslyAllowUnauthenticated): anyone who can reach /api/messages can run commands as anyone. Use this only with a local emulator.",
        );
      }
      if (options.credentialsFactory)
        log.warn("teams outbound tokens come from an injected credentials factory");
      accepting = true;
      log.info({ appType, tenants: [...allowedTenants] }, "teams adapter started");
    },
    async stop() {
      accepting = false;
      stopping.abort();
      await Promise.allSettled([...inflight]);
    },
    async idle() {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
  };
}
