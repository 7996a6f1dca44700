import type { Card } from "./card.ts";
import type { Config } from "./config.ts";
import type { Conversation, JobData, JobState } from "./model.ts";
import { renderJobCard } from "./render-job-card.ts";

/**
 * A mirror is its own card, `m-<n>-<job id>`: the approval request's card shown in the n-th conversation
 * of the environment's `approval.mirrorTo` (counted from 0 in the list stored when the request was
 * first rendered). The prefix collides with no other card source (jobs "j", batches "b", break-glass
 * "bg-", alert groups "a", reminders "r-").
 */
export const mirrorCardPrefix = "m-";

export function toMirrorCardId(index: number, jobId: string): string {
  return `${mirrorCardPrefix}${index}-${jobId}`;
}

export function fromMirrorCardId(cardId: string): { index: number; jobId: string } | undefined {
  const match = /^m-([0-9]{1,2})-(j[0-9a-z]{6,20})$/.exec(cardId);
  if (!match) return undefined;
  return { index: Number(match[1]), jobId: match[2] as string };
}

/**
 * Where an approval request of this job is mirrored: the environment's `approval.mirrorTo`, without the
 * conversation it was asked in (the original card is already there). Pure.
 */
export function mirrorsFor(config: Config, data: JobData): Conversation[] {
  const targets = config.environments[data.env]?.approval?.mirrorTo ?? [];
  return targets
    .filter((t) => t.platform !== data.conversation.platform || t.channel !== data.conversation.channel)
    .map((t) => ({ platform: t.platform, channel: t.channel }));
}

const platformNames: Record<Conversation["platform"], string> = {
  slack: "Slack",
  teams: "Teams",
  shell: "the shell",
};

/**
 * The mirror shows exactly what the original card shows (same buttons: a click is decided from the
 * clicker's own identity wherever it comes from) and says where the request was made.
 */
export function renderMirrorCard(state: JobState): Card {
  const card = renderJobCard(state);
  card.footer = `${card.footer ?? `job ${state.jobId}`} · mirrored from ${platformNames[state.data.conversation.platform]}`;
  return card;
}
