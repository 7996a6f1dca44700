import type { JobState } from "./model.ts";
import { describeJob } from "./render-job-card.ts";

/** A finished operation's run time, as kept per target (newest first). */
export interface RunTime {
  kind: string;
  ms: number;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** The usual run time of this kind on a target: the median of its kind, else of every kind. */
export function typicalRunMs(runs: RunTime[], kind: string): number | undefined {
  return median(runs.filter((r) => r.kind === kind).map((r) => r.ms)) ?? median(runs.map((r) => r.ms));
}

/** "under a minute", "about 4 min", "about 1 h 05 min". */
export function formatEta(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 1) return "under a minute";
  if (minutes < 60) return `about ${minutes} min`;
  return `about ${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/**
 * The `queue` listing: per job one line, with its position and expected start (waiting) or time left
 * (running), from the target's recent run times. Pure: the caller passes the run times and the clock.
 */
export function describeQueue(
  states: JobState[],
  runs: ReadonlyMap<string, RunTime[]>,
  now: number,
): string[] {
  const targetOf = (s: JobState) => `${s.data.service}:${s.data.env}`;
  // Per target: when the running job should be done (undefined: unknown).
  const freeAt = new Map<string, number | undefined>();
  const lines = new Map<string, string>();
  for (const s of states) {
    if (s.phase !== "running" && s.phase !== "progress") continue;
    const typical = typicalRunMs(runs.get(targetOf(s)) ?? [], s.data.kind);
    const started = s.startedAt ?? now;
    const done = typical === undefined ? undefined : Math.max(now, started + typical);
    freeAt.set(targetOf(s), done);
    const left =
      typical === undefined
        ? "no recent runs to estimate from"
        : started + typical < now
          ? `taking longer than its usual ${formatEta(typical).replace("about ", "")}`
          : `${formatEta(started + typical - now)} left`;
    lines.set(s.jobId, `${s.text} · ${left}`);
  }
  const waiting = states
    .filter((s) => s.phase === "waiting" && s.position !== undefined)
    .sort((a, b) => (a.position ?? 0) - (b.position ?? 0));
  for (const s of waiting) {
    const target = targetOf(s);
    const typical = typicalRunMs(runs.get(target) ?? [], s.data.kind);
    const start = freeAt.has(target) ? freeAt.get(target) : now;
    const eta =
      start === undefined || typical === undefined
        ? "no ETA (no recent runs of this target)"
        : `starts in ${formatEta(start - now)}`;
    lines.set(s.jobId, `waiting, position ${s.position} · ${eta}`);
    freeAt.set(target, start === undefined || typical === undefined ? undefined : start + typical);
  }
  return states.map((s) => `${s.jobId} · ${describeJob(s.data)} · ${lines.get(s.jobId) ?? s.text}`);
}
