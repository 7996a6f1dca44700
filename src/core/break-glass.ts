import { type Card, createCard } from "./card.ts";
import { type ApprovalPolicy, approvalPolicySchema, type Config } from "./config.ts";
import type { JobState } from "./model.ts";
import { describeJob } from "./render-job-card.ts";

/** What a break-glass use is posted as in the audit channel; one post each. */
export const breakGlassEvents = ["requested", "approved", "ran"] as const;
export type BreakGlassEvent = (typeof breakGlassEvents)[number];

/**
 * The approval a break-glass deploy in `env` needs, as an approval policy so the request goes through
 * the same machinery as any other; undefined when the environment has no break-glass policy. Pure.
 */
export function breakGlassApproval(config: Config, env: string): ApprovalPolicy | undefined {
  const policy = config.environments[env]?.breakGlass;
  if (!policy) return undefined;
  return approvalPolicySchema.parse({
    required: policy.required,
    from: policy.from,
    forbidRequester: policy.forbidRequester,
    expiresAfterMinutes: policy.expiresAfterMinutes,
    rollbacks: "require",
  });
}

/** The notifier's card id of one break-glass post: `bg-<event>-<job id>`. */
export function toBreakGlassCardId(event: BreakGlassEvent, jobId: string): string {
  return `bg-${event}-${jobId}`;
}

export const breakGlassCardPrefix = "bg-";

export function fromBreakGlassCardId(cardId: string): { event: BreakGlassEvent; jobId: string } | undefined {
  const match = /^bg-(requested|approved|ran)-(j[0-9a-z]{6,20})$/.exec(cardId);
  if (!match) return undefined;
  return { event: match[1] as BreakGlassEvent, jobId: match[2] as string };
}

/**
 * One break-glass post for the audit channel. `passedFreeze` is the freeze the run went through (ran
 * only). The ran post follows the job to its end; the others say what happened at that step.
 */
export function renderBreakGlassCard(event: BreakGlassEvent, state: JobState, passedFreeze?: string): Card {
  const { data } = state;
  const what = describeJob(data);
  const reason = data.breakGlass?.reason ?? "";
  const asked = `Requested by ${data.requestedBy.name}: ${reason}`;
  let card: Card;
  if (event === "requested") {
    card = createCard("warning", `🚨 Break-glass requested · ${what}`, [asked]);
  } else if (event === "approved") {
    card = createCard("warning", `🚨 Break-glass approved · ${what}`, [
      `Approved by ${state.approvedBy ?? "?"}`,
      asked,
    ]);
  } else {
    const tone = state.phase === "succeeded" ? "success" : state.phase === "failed" ? "failure" : "warning";
    card = createCard(tone, `🚨 Break-glass deploy ran · ${what}`, [
      state.text,
      ...(passedFreeze ? [`Passed: ${passedFreeze}`] : []),
      asked,
    ]);
    if (state.approvedBy) card.fields.push({ label: "Approved by", value: state.approvedBy });
  }
  card.footer = `job ${state.jobId} · break-glass`;
  return card;
}
