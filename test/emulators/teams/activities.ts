import { randomUUID } from "node:crypto";

/** Inbound activities shaped as Teams sends them (Bot Framework Activity schema, Teams channelData). */

export interface TeamsUser {
  /** Teams' own user id (29:…). */
  id: string;
  aadObjectId: string;
  name: string;
}

export interface ActivityBase {
  serviceUrl: string;
  appId: string;
  botName?: string;
  /** Conversation id as Teams sends it (a channel reply chain carries `;messageid=`). */
  conversationId: string;
  conversationType?: "personal" | "channel" | "groupChat";
  tenantId: string;
  from: TeamsUser;
  id?: string;
  channelId?: string;
}

function base(o: ActivityBase) {
  const conversationType = o.conversationType ?? "personal";
  return {
    id: o.id ?? `1${Date.now()}${Math.floor(Math.random() * 1000)}`,
    timestamp: new Date().toISOString(),
    channelId: o.channelId ?? "msteams",
    serviceUrl: o.serviceUrl,
    from: { id: o.from.id, name: o.from.name, aadObjectId: o.from.aadObjectId },
    conversation: {
      id: o.conversationId,
      conversationType,
      tenantId: o.tenantId,
      ...(conversationType === "personal" ? {} : { isGroup: true }),
    },
    recipient: { id: `28:${o.appId}`, name: o.botName ?? "shipbot" },
    channelData: { tenant: { id: o.tenantId } },
    locale: "en-US",
  };
}

/** A message; with `mention`, the bot is @mentioned first, as channels and group chats require. */
export function teamsMessage(o: ActivityBase & { text: string; mention?: boolean }) {
  const botName = o.botName ?? "shipbot";
  const at = `<at>${botName}</at>`;
  return {
    ...base(o),
    type: "message",
    textFormat: "plain",
    text: o.mention ? `${at} ${o.text}` : o.text,
    entities: o.mention
      ? [{ type: "mention", text: at, mentioned: { id: `28:${o.appId}`, name: botName } }]
      : [{ type: "clientInfo", locale: "en-US", platform: "Web" }],
  };
}

/** A click on an Action.Execute button of a card the bot sent. */
export function teamsCardAction(o: ActivityBase & { verb: string; value: string; replyToId?: string }) {
  return {
    ...base({ ...o, id: o.id ?? `f:${randomUUID()}` }),
    type: "invoke",
    name: "adaptiveCard/action",
    ...(o.replyToId === undefined ? {} : { replyToId: o.replyToId }),
    value: {
      action: { type: "Action.Execute", id: `btn-${o.verb}`, verb: o.verb, data: { value: o.value } },
      trigger: "manual",
    },
  };
}
