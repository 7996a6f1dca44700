/**
 * Everything shipbot asks of Slack, in one place: the Web API methods it calls (with the bot scope each
 * needs), the slash commands it registers and the events it subscribes to. The adapter builds its calls
 * from these lists and the app manifest is checked against them, so the scopes requested at install
 * time are exactly the ones the code uses.
 */

/** Reading back a card whose post answer was lost: public and private channels. */
const historyScopes = ["channels:history", "groups:history"] as const;

/** Web API method → bot scope or scopes (undefined: no scope needed). */
export const slackMethodScopes = {
  "auth.test": undefined,
  "chat.postMessage": "chat:write",
  "chat.update": "chat:write",
  "chat.postEphemeral": "chat:write",
  "conversations.history": historyScopes,
  "conversations.replies": historyScopes,
  "usergroups.users.list": "usergroups:read",
} as const satisfies Record<string, string | readonly string[] | undefined>;

export type SlackMethod = keyof typeof slackMethodScopes;

/** The slash commands the adapter registers; `/shipbot` takes any command as its text. */
export const slackSlashCommands = ["/deploy", "/rollback", "/scale", "/shipbot"] as const;
export type SlackSlashCommand = (typeof slackSlashCommands)[number];

/** Bot events the adapter listens to, with the scope each subscription needs. */
export const slackBotEvents = { app_mention: "app_mentions:read" } as const satisfies Record<string, string>;

/** The bot scopes to request at install: derived, never listed by hand. */
export function slackBotScopes(): string[] {
  const scopes = new Set<string>();
  for (const scope of Object.values(slackMethodScopes).flat()) if (scope !== undefined) scopes.add(scope);
  for (const scope of Object.values(slackBotEvents)) scopes.add(scope);
  // Slash commands are delivered only to apps holding the `commands` scope.
  if (slackSlashCommands.length > 0) scopes.add("commands");
  return [...scopes].sort();
}

/** Prefix of every button action id shipbot renders, so its listener ignores other apps' buttons. */
export const actionIdPrefix = "shipbot:";
