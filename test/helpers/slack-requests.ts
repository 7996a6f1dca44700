/**
 * Requests as Slack sends them to the bot's HTTP endpoint: form-encoded slash commands, signed with the
 * app's signing secret over the timestamp and the raw body.
 */
import { randomBytes } from "node:crypto";
import { computeSlackSignature } from "../../src/adapters/slack/verify-slack-signature.ts";

export interface SlackRequestOptions {
  contentType?: string;
  /** Unix seconds; default now. */
  timestamp?: number;
  /** A signature to send instead of the right one; null sends none. */
  signature?: string | null;
  headers?: Record<string, string>;
}

/** POSTs `body` to `<baseUrl>/slack/events`, signed with `secret` unless told otherwise. */
export function sendSlackRequest(
  baseUrl: string,
  secret: string,
  body: string | Buffer,
  options: SlackRequestOptions = {},
): Promise<Response> {
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const headers: Record<string, string> = {
    "content-type": options.contentType ?? "application/x-www-form-urlencoded",
    "x-slack-request-timestamp": timestamp,
    ...options.headers,
  };
  if (options.signature !== null) {
    headers["x-slack-signature"] = options.signature ?? computeSlackSignature(secret, timestamp, body);
  }
  return fetch(`${baseUrl}/slack/events`, { method: "POST", headers, body });
}

let triggers = 0;
/** A fresh trigger id: Slack's id of one slash command or click, which shipbot turns into the job id. */
export function newTriggerId(): string {
  triggers += 1;
  return `${Date.now()}.${triggers}.${randomBytes(8).toString("hex")}`;
}

export interface SlashCommandInput {
  command: string;
  text: string;
  user: { id: string; name: string };
  channel: string;
  /** Where Slack takes delayed answers; `/commands/T0EMULATED/<trigger>` is appended. */
  responseUrl: string;
  trigger?: string;
}

/** The form body of a slash command, with the fields Slack sends. */
export function slashCommandBody(input: SlashCommandInput): string {
  const trigger = input.trigger ?? newTriggerId();
  return new URLSearchParams({
    token: "legacy-verification-token",
    team_id: "T0EMULATED",
    team_domain: "emulated",
    channel_id: input.channel,
    channel_name: input.channel.toLowerCase(),
    user_id: input.user.id,
    user_name: input.user.name,
    command: input.command,
    text: input.text,
    api_app_id: "A0SHIPBOT",
    is_enterprise_install: "false",
    response_url: `${input.responseUrl}/commands/T0EMULATED/${trigger}`,
    trigger_id: trigger,
  }).toString();
}
