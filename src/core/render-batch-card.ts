import { type Card, createCard } from "./card.ts";
import { countServices } from "./fan-out.ts";
import type { JobKind } from "./model.ts";

/** A fan-out as its card shows it: what was asked, and how many of its jobs are where. */
export interface BatchView {
  batchId: string;
  kind: JobKind;
  env: string;
  version?: string;
  total: number;
  /** Named on the card when there are few (empty for a large batch). */
  services: string[];
  requestedBy: string;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  /** Services `*` left out because the requester may not operate them: how many, and the first names. */
  skipped?: { count: number; names: string[] };
  /** The first failures, in the order they happened. */
  failures: Array<{ service: string; reason: string }>;
}

/** Failures named on the card; the rest are counted. */
export const batchFailuresShown = 10;

const n = (value: number): string => value.toLocaleString("en-US");

/** "🚀 deploy v2 to 1,000 services in staging", "↩ rollback 3 services in staging" */
export function describeBatch(batch: {
  kind: JobKind;
  env: string;
  version?: string | undefined;
  total: number;
}): string {
  const count = countServices(batch.total);
  if (batch.kind === "deploy") return `🚀 deploy ${batch.version ?? "?"} to ${count} in ${batch.env}`;
  if (batch.kind === "rollback") return `↩ rollback ${count} in ${batch.env}`;
  return `⚖ scale ${count} in ${batch.env}`;
}

/**
 * The one card of a fan-out, edited in place as its jobs move: "640/1,000 done, 3 failed, 12 running,
 * 345 waiting", then the failures with their reasons (capped).
 */
export function renderBatchCard(batch: BatchView): Card {
  const finished = batch.succeeded + batch.failed + batch.cancelled;
  const waiting = Math.max(0, batch.total - finished - batch.running);
  const over = finished >= batch.total;
  const tone = !over
    ? batch.running > 0 || finished > 0
      ? "running"
      : "pending"
    : batch.failed > 0
      ? "failure"
      : batch.cancelled > 0
        ? "warning"
        : "success";
  const card = createCard(tone, describeBatch(batch));
  const parts = [`${n(batch.succeeded)}/${n(batch.total)} done`];
  if (batch.failed > 0) parts.push(`${n(batch.failed)} failed`);
  if (batch.cancelled > 0) parts.push(`${n(batch.cancelled)} cancelled`);
  if (batch.running > 0) parts.push(`${n(batch.running)} running`);
  if (waiting > 0) parts.push(`${n(waiting)} waiting`);
  const icon = !over ? "▶" : tone === "success" ? "✅" : tone === "failure" ? "❌" : "🚫";
  card.lines.push(`${icon} ${parts.join(", ")}`);
  if (batch.services.length > 0) card.fields.push({ label: "Services", value: batch.services.join(", ") });
  if (batch.skipped && batch.skipped.count > 0) {
    const more = batch.skipped.count - batch.skipped.names.length;
    card.lines.push(
      `Left out: ${countServices(batch.skipped.count)} of ${batch.env} you may not ${batch.kind} (${batch.skipped.names.join(", ")}${more > 0 ? `, … ${n(more)} more` : ""})`,
    );
  }
  const shown = batch.failures.slice(0, batchFailuresShown);
  for (const f of shown) card.lines.push(`❌ ${f.service}: ${f.reason}`);
  if (batch.failed > shown.length) card.lines.push(`… and ${n(batch.failed - shown.length)} more failed`);
  card.footer = `batch ${batch.batchId} · requested by ${batch.requestedBy}`;
  return card;
}
