import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { ChatAction } from "../app/handle-action.ts";
import type { CommandHandler, CommandReply } from "../app/handle-command.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import { createCard } from "../core/card.ts";
import type { Config } from "../core/config.ts";
import { ShipbotError, toShipbotError } from "../core/errors.ts";
import { type Conversation, type JobData, jobDataSchema } from "../core/model.ts";
import { authorize, describeDenial } from "../core/policy.ts";
import { createStatusStore, type HistoryEntry } from "../notify/status-store.ts";
import { toRollbackCommandId } from "../queue/job-id.ts";
import type { Keys } from "../queue/keys.ts";
import { type AlertGroupState, fromGroupHash } from "./alert-group.ts";
import { alertCardIdPattern, createAlertKeys } from "./alert-keys.ts";
import type { AlertsConfig } from "./alerts-config.ts";
import { createSilence } from "./create-silence.ts";
import { correlate, firedAtOf, toDurationLabel } from "./render-alert-card.ts";

export interface AlertActionOptions {
  redis: Redis;
  keys: Keys;
  /** Roles and permissions (the whole configuration). */
  config: Pick<Config, "roles">;
  alerts: AlertsConfig;
  /** The normal command path: Roll back becomes `rollback <service> <env>` typed by the clicker. */
  handle: CommandHandler;
  /** The target's last operations (default: StatusStore.history on `redis`), read again at each click. */
  history?: (service: string, env: string, count: number) => Promise<HistoryEntry[]>;
  /** Alertmanager's base URL for silences (ALERTMANAGER_URL); without it Silence answers why not. */
  alertmanagerUrl?: string;
  audit?: Pick<AuditLog, "append">;
  fetch?: typeof fetch;
  log: Logger;
  now?: () => number;
}

export const alertActions = ["alert-rollback", "alert-ack", "alert-silence"] as const;

export function isAlertAction(action: string): boolean {
  return (alertActions as readonly string[]).includes(action);
}

function reply(ok: boolean, message: string, error?: ShipbotError): CommandReply {
  const card = createCard(ok ? "success" : error?.code === "forbidden" ? "warning" : "failure", message);
  return error ? { ok, card, jobIds: [], error, traceId: "" } : { ok, card, jobIds: [], traceId: "" };
}

const fail = (code: ShipbotError["code"], message: string) =>
  reply(false, message, new ShipbotError(code, message));

const platformNames: Record<Conversation["platform"], string> = {
  slack: "Slack",
  teams: "Teams",
  shell: "the shell",
};

/** Whether the job was made by this click, or by an earlier one whose command it shares. */
function isMadeBy(data: JobData, action: ChatAction): boolean {
  return (
    data.requestedBy.id === action.user.id &&
    data.requestedAt === action.receivedAt &&
    data.conversation.platform === action.conversation.platform &&
    data.conversation.channel === action.conversation.channel
  );
}

/**
 * The buttons of alert cards. The value names the card; everything else (the target, the labels to
 * silence) is read back from Redis, never taken from the click. Each click is authorized against the
 * configuration by the clicker's immutable id: Acknowledge needs `read`, Silence needs `rollback` on the
 * target (whoever may end an incident may quiet it); Roll back goes through the command path, where its
 * own permission and approval rules apply.
 */
export function createAlertActionHandler(options: AlertActionOptions) {
  const { redis, log } = options;
  const alertKeys = createAlertKeys(options.keys);
  const now = options.now ?? Date.now;
  const status = createStatusStore(redis, options.keys);
  const history = options.history ?? status.history;

  /** A queued job's payload, or a request's while it awaits approval (it has no queued job yet). */
  async function loadJobData(jobId: string): Promise<JobData | undefined> {
    const raw = await redis.hget(options.keys.bullJob(jobId), "data");
    if (raw === null) return (await status.read(jobId))?.data;
    const parsed = jobDataSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  }

  async function touch(cardId: string, field: string, value: unknown): Promise<void> {
    const [seconds] = await redis.time();
    await redis
      .multi()
      .hset(alertKeys.group(cardId), field, JSON.stringify(value))
      .hincrby(alertKeys.group(cardId), "seq", 1)
      // Rendered at once: the person who clicked is looking at the card.
      .zadd(options.keys.cards, "LT", Number(seconds) * 1000, cardId)
      .exec();
  }

  /**
   * A rollback undoes the target's newest change, whatever it is, so the card the click came from may be
   * out of date: the history is read again, and the rollback runs only while the deploy the alert points
   * at is still the newest change. Its job id names that deploy, so clicks on every card it caused (other
   * channels, other alert groups) make one rollback instead of a second one that undoes the first.
   */
  async function rollBack(
    action: ChatAction,
    group: AlertGroupState,
    service: string,
    env: string,
  ): Promise<CommandReply> {
    const at = now();
    const entries = await history(service, env, 20);
    const correlation = correlate(entries, firedAtOf(group, at), options.alerts);
    const changed = correlation.changedSince;
    if (changed)
      return fail(
        "conflict",
        `${service}/${env} was already rolled back to ${changed.version} by ${changed.by} after its last deploy; nothing was done (run \`rollback ${service} ${env}\` to roll back further)`,
      );
    if (!correlation.cause)
      return fail(
        "not_found",
        `no deploy of ${service}/${env} in the ${options.alerts.correlationWindowMinutes} min before this alert; nothing was done (run \`rollback ${service} ${env}\` to roll back anyway)`,
      );
    // The same card is shown in Slack and Teams at once: the id is shared by every platform, so a click
    // in each still makes one rollback. It runs as whoever clicked first, with its card where they did;
    // every clicker's own permission is checked by the command path before it finds that job.
    const answer = await options.handle({
      id: toRollbackCommandId(service, env, correlation.cause.jobId, entries),
      user: action.user,
      conversation: action.conversation,
      text: `rollback ${service} ${env}`,
      receivedAt: action.receivedAt,
    });
    return answer.ok ? await tellWhenJoined(answer, action, service, env) : answer;
  }

  /**
   * A click that found the rollback an earlier click made gets the answer of a redelivered command: the
   * job id and no card. Its card is in the first clicker's conversation, so this clicker hears it here.
   */
  async function tellWhenJoined(
    answer: CommandReply,
    action: ChatAction,
    service: string,
    env: string,
  ): Promise<CommandReply> {
    const [made] = answer.jobIds;
    if (made === undefined || answer.jobIds.length > 1 || answer.card) return answer;
    // Only the wording depends on it: the rollback is queued either way, and must not be answered as failed.
    const data = await loadJobData(made).catch((error: unknown) => {
      log.warn({ err: error, job: made }, "could not read the rollback a click joined");
      return undefined;
    });
    if (!data || isMadeBy(data, action)) return answer;
    const where = platformNames[data.conversation.platform];
    const card = createCard(
      "info",
      `${service}/${env} is already being rolled back (${made}) by ${data.requestedBy.name} from ${where}, where its card is; nothing more was queued`,
    );
    return { ...answer, card };
  }

  return async function handleAlertAction(action: ChatAction): Promise<CommandReply> {
    if (!alertCardIdPattern.test(action.value))
      return fail("usage", "that button no longer refers to an alert");
    const group = fromGroupHash(action.value, await redis.hgetall(alertKeys.group(action.value)));
    if (!group) return fail("not_found", "this alert group is no longer known (it expired)");
    const { service, env } = group.meta;
    const scope = { ...(service ? { service } : {}), ...(env ? { env } : {}) };
    const by = { by: action.user.name, byId: action.user.id, at: now() };
    try {
      switch (action.action) {
        case "alert-ack": {
          const decision = authorize(options.config as Config, action.user, "read", scope);
          if (!decision.allowed) return fail("forbidden", describeDenial("read", scope, decision));
          if (group.ack) return reply(true, `Already acknowledged by ${group.ack.by}`);
          await touch(group.cardId, "ack", by);
          await options.audit?.append("alert.ack", {
            actor: action.user.id,
            card: group.cardId,
            group: group.meta.groupKey,
          });
          return reply(true, `Acknowledged ${group.meta.alertname ?? "the alert"}`);
        }
        case "alert-silence": {
          const decision = authorize(options.config as Config, action.user, "rollback", scope);
          if (!decision.allowed) return fail("forbidden", describeDenial("rollback", scope, decision));
          if (!options.alertmanagerUrl)
            return fail("usage", "silences need ALERTMANAGER_URL; this shipbot has none configured");
          const labels =
            Object.keys(group.meta.commonLabels).length > 0
              ? group.meta.commonLabels
              : group.meta.groupLabels;
          if (Object.keys(labels).length === 0)
            return fail("usage", "this alert group has no labels to silence by");
          const minutes = options.alerts.silenceMinutes;
          const until = by.at + minutes * 60_000;
          const id = await createSilence(
            options.alertmanagerUrl,
            {
              labels,
              startsAt: by.at,
              endsAt: until,
              createdBy: `${action.user.name} (${action.user.id}) via shipbot`,
              comment: `Silenced for ${toDurationLabel(minutes)} from the alert card ${group.cardId}`,
            },
            options.fetch,
          );
          await touch(group.cardId, "silence", { ...by, id, until });
          await options.audit?.append("alert.silence", {
            actor: action.user.id,
            card: group.cardId,
            silence: id,
          });
          return reply(true, `Silenced for ${toDurationLabel(minutes)} (silence ${id})`);
        }
        case "alert-rollback": {
          if (!service || !env)
            return fail("usage", "this alert names no service and environment to roll back");
          return await rollBack(action, group, service, env);
        }
        default:
          return fail("usage", `unknown alert action \`${action.action.slice(0, 40)}\``);
      }
    } catch (error) {
      const e = toShipbotError(error);
      log.warn({ err: error, action: action.action, card: group.cardId }, "alert action failed");
      return reply(false, e.message, e);
    }
  };
}
