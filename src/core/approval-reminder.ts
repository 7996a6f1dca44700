import { type Card, createCard } from "./card.ts";
import type { Config } from "./config.ts";
import type { JobData } from "./model.ts";
import { describeJob } from "./render-job-card.ts";

/**
 * A reminder is its own card, `r-<job id>`: a reply in the request card's thread, posted once by the
 * notifier. The prefix collides with no other card source (jobs "j", batches "b", break-glass "bg-",
 * alert groups "a").
 */
export const reminderCardPrefix = "r-";

export function toReminderCardId(jobId: string): string {
  return `${reminderCardPrefix}${jobId}`;
}

export function fromReminderCardId(cardId: string): string | undefined {
  return /^r-(j[0-9a-z]{6,20})$/.exec(cardId)?.[1];
}

/** What the reminder says about a request that is still open, read from its state when it renders. */
export interface ReminderFacts {
  data: JobData;
  expiresAt: number;
  /** Approvals needed in all, and counted so far. */
  need: number;
  counted: number;
  /** The policy's roles, in its order. */
  from: string[];
  /** Whether each approval must come through a different role; `used` are the roles already counted. */
  distinct: boolean;
  used: string[];
}

/**
 * The reminder reply: who may still approve and when the request expires. The roles are named in the
 * text on every platform; `notify` carries the user groups bound to them (`slack:S…`), which Slack turns
 * into mentions so their members are notified. Pure: `now` is passed in.
 */
export function renderReminderCard(config: Config, facts: ReminderFacts, now: number): Card {
  const left = Math.max(1, facts.need - facts.counted);
  const open = facts.distinct ? facts.from.filter((r) => !facts.used.includes(r)) : facts.from;
  const minutes = Math.max(1, Math.ceil((facts.expiresAt - now) / 60_000));
  const until = new Date(facts.expiresAt).toISOString().slice(11, 16);
  const who = open.length > 0 ? ` from ${open.join(" or ")}` : "";
  const card = createCard("pending", `⏰ Approval reminder · ${describeJob(facts.data)}`, [
    `Still needs ${left} more approval${left === 1 ? "" : "s"}${who} · expires ${until} UTC (in ${minutes} min)`,
  ]);
  const groups = open.flatMap((r) => config.roles[r]?.groups ?? []);
  if (groups.length > 0) card.notify = [...new Set(groups)];
  return card;
}
