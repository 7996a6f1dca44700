import { randomBytes } from "node:crypto";
import type {
  SlackEmulatorOptions,
  SlackEmulatorUser,
  SlackEmulatorUsergroup,
  SlackEphemeral,
  SlackMessage,
  SlackMessageMetadata,
  SlackOpenedView,
} from "./types.ts";

/** What a method handler answers: Slack always says ok/error in the body with HTTP 200. */
export type MethodResult =
  | { ok: true; [key: string]: unknown }
  | { ok: false; error: string; [key: string]: unknown };

export const teamId = "T0EMULATED";
export const botUserId = "U0SHIPBOT";
const botId = "B0SHIPBOT";
const appId = "A0SHIPBOT";

// Slack's documented limits: text "no more than 40,000 characters", at most 50 blocks per message.
const maxTextChars = 40_000;
const maxBlocks = 50;
// Slack: a trigger id expires 3 seconds after it was issued and can be exchanged once.
const triggerLifetimeMs = 3_000;
const channelIdPattern = /^[CGD][A-Z0-9]{2,}$/;
// conversations.history / .replies for apps not approved for the Marketplace (Slack, 2025): at most 15 a call.
const maxHistoryLimit = 15;

// Slack: a response_url takes "up to 5" messages "within 30 minutes" of the command or click.
const responseUrlLifetimeMs = 30 * 60_000;
const responseUrlUses = 5;

interface ResponseUrlState {
  user: string;
  channel: string;
  expiresAt: number;
  uses: number;
}

interface TriggerState {
  user: string;
  expiresAt: number;
  used: boolean;
}

/** The data behind the emulator and the Web API methods over it. Pure in-memory; no HTTP here. */
export class Workspace {
  readonly #members: ReadonlySet<string> | undefined;
  readonly #others: ReadonlySet<string>;
  readonly #users: ReadonlyMap<string, SlackEmulatorUser>;
  readonly #groups: ReadonlyMap<string, SlackEmulatorUsergroup>;
  readonly #timeScale: number;
  readonly #now: () => number;
  #byChannel = new Map<string, SlackMessage[]>();
  #ephemerals: SlackEphemeral[] = [];
  #views: SlackOpenedView[] = [];
  #triggers = new Map<string, TriggerState>();
  #responseUrls = new Map<string, ResponseUrlState>();
  #lastMicros = 0;

  constructor(options: SlackEmulatorOptions, now: () => number) {
    this.#members = options.channels === undefined ? undefined : new Set(options.channels);
    this.#others = new Set(options.otherChannels ?? []);
    this.#users = new Map((options.users ?? []).map((u) => [u.id, u]));
    this.#groups = new Map((options.usergroups ?? []).map((g) => [g.id, g]));
    this.#timeScale = options.timeScale ?? 1;
    this.#now = now;
  }

  reset(): void {
    this.#byChannel = new Map();
    this.#ephemerals = [];
    this.#views = [];
    this.#triggers = new Map();
    this.#responseUrls = new Map();
  }

  messages(channel?: string): SlackMessage[] {
    const all =
      channel === undefined
        ? [...this.#byChannel.values()].flat()
        : [...(this.#byChannel.get(channel) ?? [])];
    return all.sort((a, b) => compareTs(a.ts, b.ts)).map((m) => structuredClone(m));
  }

  message(channel: string, ts: string): SlackMessage | undefined {
    const found = this.#find(channel, ts);
    return found === undefined ? undefined : structuredClone(found);
  }

  ephemerals(channel?: string): SlackEphemeral[] {
    return this.#ephemerals
      .filter((e) => channel === undefined || e.channel === channel)
      .map((e) => structuredClone(e));
  }

  views(): SlackOpenedView[] {
    return this.#views.map((v) => structuredClone(v));
  }

  issueTrigger(user: string): string {
    const id = `${Date.now()}.${Math.floor(Math.random() * 1e12)}.${randomBytes(16).toString("hex")}`;
    this.#triggers.set(id, {
      user,
      expiresAt: this.#now() + triggerLifetimeMs * this.#timeScale,
      used: false,
    });
    return id;
  }

  /** The secret part of a response_url for `user` in `channel` (the emulator makes the path around it). */
  issueResponseUrl(user: string, channel: string): string {
    const id = `${this.#responseUrls.size + 1}/${randomBytes(12).toString("hex")}`;
    this.#responseUrls.set(id, {
      user,
      channel,
      expiresAt: this.#now() + responseUrlLifetimeMs * this.#timeScale,
      uses: 0,
    });
    return id;
  }

  /**
   * A POST to a response_url: an ephemeral message for the person it was issued to (the default), or with
   * `response_type: "in_channel"` a message in the channel, even one the bot is not in. Slack answers a
   * URL used up or expired with 404; the body's wording is not documented.
   */
  respond(id: string, body: unknown): { status: number; result: MethodResult } {
    const target = this.#responseUrls.get(id);
    if (target === undefined) return { status: 404, result: { ok: false, error: "invalid_url" } };
    if (this.#now() > target.expiresAt) return { status: 404, result: { ok: false, error: "expired_url" } };
    if (target.uses >= responseUrlUses) return { status: 404, result: { ok: false, error: "used_url" } };
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return { status: 400, result: { ok: false, error: "invalid_payload" } };
    }
    const content = readContent(body as Record<string, unknown>);
    if (!content.ok) return { status: 400, result: content };
    target.uses += 1;
    if ((body as { response_type?: unknown }).response_type === "in_channel") {
      this.#store(target.channel, botUserId, content.text, content.blocks, undefined);
    } else {
      const ephemeral: SlackEphemeral = { channel: target.channel, user: target.user, text: content.text };
      if (content.blocks !== undefined) ephemeral.blocks = content.blocks;
      this.#ephemerals.push(ephemeral);
    }
    return { status: 200, result: { ok: true } };
  }

  addMessage(input: { channel: string; user: string; text: string; thread_ts?: string }): SlackMessage {
    return structuredClone(this.#store(input.channel, input.user, input.text, undefined, input.thread_ts));
  }

  // ---- Web API methods ------------------------------------------------------------------------------------

  authTest(): MethodResult {
    return {
      ok: true,
      url: "https://shipbot-emulated.slack.com/",
      team: "Emulated",
      user: "shipbot",
      team_id: teamId,
      user_id: botUserId,
      bot_id: botId,
      is_enterprise_install: false,
    };
  }

  postMessage(args: Record<string, unknown>): MethodResult {
    const channel = stringArg(args.channel);
    const access = this.#channelAccess(channel);
    if (access !== "member") return { ok: false, error: access };
    const content = readContent(args);
    if (!content.ok) return content;
    const metadata = readMetadata(args.metadata);
    if (metadata === null) return { ok: false, error: "invalid_metadata_format" };
    const threadTs = stringArg(args.thread_ts);
    const message = this.#store(channel ?? "", botUserId, content.text, content.blocks, threadTs);
    if (metadata !== undefined) message.metadata = metadata;
    return { ok: true, channel: message.channel, ts: message.ts, message: this.#wire(message) };
  }

  update(args: Record<string, unknown>): MethodResult {
    const channel = stringArg(args.channel);
    const access = this.#channelAccess(channel);
    if (access !== "member") return { ok: false, error: access };
    const ts = stringArg(args.ts);
    const message = ts === undefined ? undefined : this.#find(channel ?? "", ts);
    if (message === undefined) return { ok: false, error: "message_not_found" };
    if (message.user !== botUserId) return { ok: false, error: "cant_update_message" };
    const content = readContent(args);
    if (!content.ok) return content;
    message.text = content.text;
    if (content.blocks === undefined) delete message.blocks;
    else message.blocks = content.blocks;
    message.edits += 1;
    message.history.push(version(content.text, content.blocks));
    return {
      ok: true,
      channel: message.channel,
      ts: message.ts,
      text: message.text,
      message: this.#wire(message),
    };
  }

  postEphemeral(args: Record<string, unknown>): MethodResult {
    const channel = stringArg(args.channel);
    // Slack lists no not_in_channel for this method: a channel the bot cannot post in is simply not found.
    if (this.#channelAccess(channel) !== "member") return { ok: false, error: "channel_not_found" };
    const user = stringArg(args.user);
    if (user === undefined || (this.#users.size > 0 && !this.#users.has(user))) {
      return { ok: false, error: "user_not_in_channel" };
    }
    const content = readContent(args);
    if (!content.ok) return content;
    const ephemeral: SlackEphemeral = { channel: channel ?? "", user, text: content.text };
    if (content.blocks !== undefined) ephemeral.blocks = content.blocks;
    const threadTs = stringArg(args.thread_ts);
    if (threadTs !== undefined) ephemeral.thread_ts = threadTs;
    this.#ephemerals.push(ephemeral);
    return { ok: true, message_ts: this.#nextTs() };
  }

  /** conversations.history: top-level messages (thread replies stay in their thread), newest first. */
  history(args: Record<string, unknown>): MethodResult {
    const channel = stringArg(args.channel);
    const access = this.#channelAccess(channel);
    if (access !== "member") return { ok: false, error: access };
    const top = (this.#byChannel.get(channel ?? "") ?? []).filter(
      (m) => m.thread_ts === undefined || m.thread_ts === m.ts,
    );
    return this.#page(top, args, "newest");
  }

  /** conversations.replies: the parent, then its replies oldest first. */
  replies(args: Record<string, unknown>): MethodResult {
    const channel = stringArg(args.channel);
    const access = this.#channelAccess(channel);
    if (access !== "member") return { ok: false, error: access };
    const ts = stringArg(args.ts);
    const parent = ts === undefined ? undefined : this.#find(channel ?? "", ts);
    if (ts === undefined || parent === undefined) return { ok: false, error: "thread_not_found" };
    const thread = (this.#byChannel.get(channel ?? "") ?? []).filter(
      (m) => m.ts === ts || (m.thread_ts === ts && !m.orphan),
    );
    return this.#page(thread, args, "oldest");
  }

  usergroupUsers(args: Record<string, unknown>): MethodResult {
    const group = this.#groups.get(stringArg(args.usergroup) ?? "");
    if (group === undefined) return { ok: false, error: "no_such_subteam" };
    return { ok: true, users: [...group.users] };
  }

  userInfo(args: Record<string, unknown>): MethodResult {
    const id = stringArg(args.user);
    if (id === botUserId) return { ok: true, user: userObject({ id, name: "shipbot" }, true) };
    const user = this.#users.get(id ?? "");
    if (user === undefined) return { ok: false, error: "user_not_found" };
    return { ok: true, user: userObject(user, false) };
  }

  conversationInfo(args: Record<string, unknown>): MethodResult {
    const channel = stringArg(args.channel);
    const access = this.#channelAccess(channel);
    if (access === "channel_not_found" || channel === undefined)
      return { ok: false, error: "channel_not_found" };
    return {
      ok: true,
      channel: {
        id: channel,
        name: channel.toLowerCase(),
        is_channel: channel.startsWith("C"),
        is_group: channel.startsWith("G"),
        is_im: channel.startsWith("D"),
        is_private: !channel.startsWith("C"),
        is_archived: false,
        is_member: access === "member",
        context_team_id: teamId,
      },
    };
  }

  viewsOpen(args: Record<string, unknown>): MethodResult {
    const triggerId = stringArg(args.trigger_id);
    const trigger = triggerId === undefined ? undefined : this.#triggers.get(triggerId);
    if (triggerId === undefined || trigger === undefined) {
      return {
        ok: false,
        error: "invalid_arguments",
        response_metadata: { messages: ["invalid `trigger_id`"] },
      };
    }
    if (trigger.used) return { ok: false, error: "exchanged_trigger_id" };
    if (this.#now() > trigger.expiresAt) return { ok: false, error: "expired_trigger_id" };
    const view = jsonArg(args.view);
    if (typeof view !== "object" || view === null || Array.isArray(view)) {
      return { ok: false, error: "invalid_arguments", response_metadata: { messages: ["missing `view`"] } };
    }
    const body = view as Record<string, unknown>;
    if (body.type !== "modal") {
      return {
        ok: false,
        error: "invalid_arguments",
        response_metadata: { messages: ["`view.type` must be modal"] },
      };
    }
    const blocks = checkBlocks(body.blocks ?? []);
    if (!blocks.ok) return blocks;
    trigger.used = true;
    const id = `V${randomBytes(5).toString("hex").toUpperCase()}`;
    this.#views.push({ id, trigger_id: triggerId, user: trigger.user, view: structuredClone(body) });
    return {
      ok: true,
      view: {
        ...body,
        id,
        team_id: teamId,
        app_id: appId,
        bot_id: botId,
        root_view_id: id,
        hash: this.#nextTs(),
      },
    };
  }

  // ---- internals --------------------------------------------------------------------------------------------

  /** oldest / latest (exclusive unless `inclusive`), limit (at most 15), cursor, include_all_metadata. */
  #page(list: SlackMessage[], args: Record<string, unknown>, order: "newest" | "oldest"): MethodResult {
    const oldest = stringArg(args.oldest);
    const latest = stringArg(args.latest);
    const inclusive = args.inclusive === true || args.inclusive === "true" || args.inclusive === "1";
    const inRange = list.filter((m) => {
      if (oldest !== undefined) {
        const c = compareTs(m.ts, oldest);
        if (c < 0 || (c === 0 && !inclusive)) return false;
      }
      if (latest !== undefined) {
        const c = compareTs(m.ts, latest);
        if (c > 0 || (c === 0 && !inclusive)) return false;
      }
      return true;
    });
    inRange.sort((a, b) => (order === "newest" ? compareTs(b.ts, a.ts) : compareTs(a.ts, b.ts)));
    const asked = Number(stringArg(args.limit) ?? maxHistoryLimit);
    const limit = Number.isInteger(asked) && asked > 0 ? Math.min(asked, maxHistoryLimit) : maxHistoryLimit;
    const cursor = stringArg(args.cursor);
    const start = cursor === undefined ? 0 : Number(Buffer.from(cursor, "base64").toString("utf8").slice(5));
    if (!Number.isInteger(start) || start < 0) return { ok: false, error: "invalid_cursor" };
    const page = inRange.slice(start, start + limit);
    const hasMore = start + limit < inRange.length;
    const withMetadata =
      args.include_all_metadata === true ||
      args.include_all_metadata === "true" ||
      args.include_all_metadata === "1";
    return {
      ok: true,
      messages: page.map((m) => this.#wire(m, withMetadata)),
      has_more: hasMore,
      response_metadata: {
        next_cursor: hasMore ? Buffer.from(`next:${start + limit}`).toString("base64") : "",
      },
    };
  }

  #channelAccess(channel: string | undefined): "member" | "not_in_channel" | "channel_not_found" {
    if (channel === undefined) return "channel_not_found";
    if (this.#members === undefined) return channelIdPattern.test(channel) ? "member" : "channel_not_found";
    if (this.#members.has(channel)) return "member";
    return this.#others.has(channel) ? "not_in_channel" : "channel_not_found";
  }

  #find(channel: string, ts: string): SlackMessage | undefined {
    return this.#byChannel.get(channel)?.find((m) => m.ts === ts);
  }

  #store(
    channel: string,
    user: string,
    text: string,
    blocks: unknown[] | undefined,
    threadTs: string | undefined,
  ): SlackMessage {
    const message: SlackMessage = { channel, ts: this.#nextTs(), text, user, edits: 0, history: [] };
    if (blocks !== undefined) message.blocks = blocks;
    if (threadTs !== undefined) {
      message.thread_ts = threadTs;
      // Slack accepts a reply whose parent is missing or is itself a reply, then shows it nowhere.
      const parent = this.#find(channel, threadTs);
      if (parent === undefined || (parent.thread_ts !== undefined && parent.thread_ts !== parent.ts)) {
        message.orphan = true;
      }
    }
    message.history.push(version(text, blocks));
    const list = this.#byChannel.get(channel) ?? [];
    list.push(message);
    this.#byChannel.set(channel, list);
    return message;
  }

  /** Slack's "seconds.micro" ts: unique and increasing (here across the whole workspace, a stricter rule). */
  #nextTs(): string {
    const micros = Math.max(Date.now() * 1000, this.#lastMicros + 1);
    this.#lastMicros = micros;
    return formatTs(micros);
  }

  #wire(message: SlackMessage, withMetadata = false): Record<string, unknown> {
    const wire: Record<string, unknown> = {
      type: "message",
      text: message.text,
      user: message.user,
      bot_id: botId,
      app_id: appId,
      team: teamId,
      ts: message.ts,
    };
    if (message.blocks !== undefined) wire.blocks = message.blocks;
    if (message.thread_ts !== undefined) wire.thread_ts = message.thread_ts;
    if (withMetadata && message.metadata !== undefined) wire.metadata = structuredClone(message.metadata);
    if (message.edits > 0) wire.edited = { user: botUserId, ts: formatTs(Date.now() * 1000) };
    return wire;
  }
}

function formatTs(micros: number): string {
  return `${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, "0")}`;
}

export function compareTs(a: string, b: string): number {
  const [as = "0", au = "0"] = a.split(".");
  const [bs = "0", bu = "0"] = b.split(".");
  return Number(as) - Number(bs) || Number(au) - Number(bu);
}

function version(
  text: string,
  blocks: unknown[] | undefined,
): { text: string; blocks?: unknown[]; at: number } {
  return blocks === undefined ? { text, at: Date.now() } : { text, blocks, at: Date.now() };
}

function userObject(user: SlackEmulatorUser, isBot: boolean): Record<string, unknown> {
  return {
    id: user.id,
    team_id: user.team_id ?? teamId,
    name: user.name,
    real_name: user.name,
    deleted: false,
    is_bot: isBot,
    is_admin: false,
    profile: { real_name: user.name, display_name: user.name },
  };
}

function stringArg(value: unknown): string | undefined {
  if (typeof value === "string" && value.length > 0) return value;
  if (typeof value === "number") return String(value);
  return undefined;
}

/** Form bodies carry nested values as JSON strings; JSON bodies carry them as they are. */
function jsonArg(value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value);
  } catch {
    return Symbol.for("unparseable");
  }
}

/**
 * `metadata` of chat.postMessage: `{ event_type, event_payload }` (a JSON string in form bodies). Undefined when
 * absent, null when malformed.
 */
function readMetadata(value: unknown): SlackMessageMetadata | undefined | null {
  if (value === undefined || value === "") return undefined;
  const parsed = jsonArg(value);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
  const { event_type, event_payload } = parsed as Record<string, unknown>;
  if (typeof event_type !== "string" || event_type === "") return null;
  if (typeof event_payload !== "object" || event_payload === null || Array.isArray(event_payload))
    return null;
  return { event_type, event_payload: structuredClone(event_payload as Record<string, unknown>) };
}

type Content = { ok: true; text: string; blocks: unknown[] | undefined } | { ok: false; error: string };

function readContent(args: Record<string, unknown>): Content {
  const text = typeof args.text === "string" ? args.text : undefined;
  let blocks: unknown[] | undefined;
  if (args.blocks !== undefined && args.blocks !== "") {
    const checked = checkBlocks(jsonArg(args.blocks));
    if (!checked.ok) return checked;
    blocks = checked.blocks;
  }
  const attachments = args.attachments !== undefined && args.attachments !== "";
  if (
    (text === undefined || text.length === 0) &&
    (blocks === undefined || blocks.length === 0) &&
    !attachments
  ) {
    return { ok: false, error: "no_text" };
  }
  // Count characters, not UTF-16 units, and only pay for that when the cheap length is already over.
  if (text !== undefined && text.length > maxTextChars && [...text].length > maxTextChars) {
    return { ok: false, error: "msg_too_long" };
  }
  return { ok: true, text: text ?? "", blocks };
}

function checkBlocks(value: unknown): { ok: true; blocks: unknown[] } | { ok: false; error: string } {
  if (!Array.isArray(value)) return { ok: false, error: "invalid_blocks_format" };
  if (value.length > maxBlocks) return { ok: false, error: "invalid_blocks" };
  for (const block of value) {
    const type = typeof block === "object" && block !== null ? (block as { type?: unknown }).type : undefined;
    if (typeof type !== "string" || type.length === 0) return { ok: false, error: "invalid_blocks" };
  }
  return { ok: true, blocks: value };
}
