import { type Card, type CardTone, createCard } from "./card.ts";
import type { JobData, JobPhase, JobState } from "./model.ts";

const tones: Record<JobPhase, CardTone> = {
  "pending-approval": "pending",
  approved: "pending",
  queued: "pending",
  waiting: "pending",
  running: "running",
  progress: "running",
  succeeded: "success",
  failed: "failure",
  cancelled: "warning",
  superseded: "warning",
};

const icons: Record<JobPhase, string> = {
  "pending-approval": "✋",
  approved: "👍",
  queued: "⏳",
  waiting: "⏳",
  running: "▶",
  progress: "▶",
  succeeded: "✅",
  failed: "❌",
  cancelled: "🚫",
  superseded: "⏭",
};

/** "api → staging · v2", "rollback api in staging", "scale api in staging to 4" */
export function describeJob(data: JobData): string {
  switch (data.kind) {
    case "deploy":
      return `🚀 ${data.service} → ${data.env} · ${data.version ?? "?"}`;
    case "rollback":
      return `↩ rollback ${data.service} in ${data.env}${data.revision === undefined ? "" : ` to revision ${data.revision}`}`;
    case "scale":
      return `⚖ scale ${data.service} in ${data.env} to ${data.replicas ?? "?"}`;
  }
}

function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** The one card a job keeps in its thread, edited in place as the job moves. */
export function renderJobCard(state: JobState): Card {
  const { data } = state;
  const card = createCard(tones[state.phase], describeJob(data));
  card.lines.push(`${icons[state.phase]} ${state.text}`);
  if (state.fromImage && state.toImage && state.fromImage !== state.toImage) {
    card.fields.push({ label: "Image", value: `${state.fromImage} → ${state.toImage}` });
  } else if (state.toImage) {
    card.fields.push({ label: "Image", value: state.toImage });
  }
  if (state.startedAt !== undefined && state.finishedAt !== undefined) {
    card.fields.push({ label: "Took", value: formatDuration(state.finishedAt - state.startedAt) });
  }
  if (state.approvedBy) card.fields.push({ label: "Approved by", value: state.approvedBy });
  if (state.phase === "pending-approval") {
    card.actions.push({ id: "approve", label: "Approve", value: state.jobId, style: "primary" });
    card.actions.push({ id: "reject", label: "Reject", value: state.jobId, style: "danger" });
  }
  if (state.phase === "queued" || state.phase === "waiting") {
    card.actions.push({ id: "cancel", label: "Cancel", value: state.jobId, style: "danger" });
  }
  if (state.phase === "succeeded" && data.kind === "deploy") {
    card.actions.push({ id: "rollback", label: "Roll back", value: state.jobId, style: "danger" });
  }
  card.footer = `job ${state.jobId} · requested by ${data.requestedBy.name}`;
  return card;
}
