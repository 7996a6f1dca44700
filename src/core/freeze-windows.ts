import type { Config } from "./config.ts";

type Window = Config["environments"][string]["freezes"][number];

const dayIndex: Record<string, number> = { mon: 0, tue: 1, wed: 2, thu: 3, fri: 4, sat: 5, sun: 6 };
const week = 7 * 24 * 60;

/** One formatter per time zone: building an Intl.DateTimeFormat costs far more than using one. */
const weekClocks = new Map<string, Intl.DateTimeFormat>();

function weekClock(timeZone: string): Intl.DateTimeFormat {
  let clock = weekClocks.get(timeZone);
  if (clock === undefined) {
    clock = new Intl.DateTimeFormat("en-US", {
      timeZone,
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    weekClocks.set(timeZone, clock);
  }
  return clock;
}

/** Minutes since Monday 00:00 in a time zone, at `now`. */
function minuteOfWeek(now: number, timeZone: string): number {
  const parts = weekClock(timeZone).formatToParts(new Date(now));
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  const day = dayIndex[get("weekday").toLowerCase().slice(0, 3)] ?? 0;
  return day * 1440 + Number(get("hour")) * 60 + Number(get("minute"));
}

function minutes(hhmm: string): number {
  const [h = "0", m = "0"] = hhmm.split(":");
  return Number(h) * 60 + Number(m);
}

export interface ActiveFreeze {
  name: string;
  reason: string | undefined;
  /** When this occurrence ends (ms since the epoch). */
  endsAt: number;
  timezone: string;
}

/** The freeze window of `env` in force at `now`, if any. Pure: the caller passes the clock. */
export function activeFreeze(config: Config, env: string, now: number): ActiveFreeze | undefined {
  for (const w of config.environments[env]?.freezes ?? []) {
    const at = minuteOfWeek(now, w.timezone);
    const start = minutes(w.start);
    let length = minutes(w.end) - start;
    if (length <= 0) length += 1440;
    for (const day of w.days) {
      const opens = (dayIndex[day] ?? 0) * 1440 + start;
      // Minutes since this window opened, wrapping around the week.
      const since = (((at - opens) % week) + week) % week;
      if (since < length) {
        return {
          name: w.name,
          reason: w.reason,
          endsAt: now + (length - since) * 60_000,
          timezone: w.timezone,
        };
      }
    }
  }
  return undefined;
}

export function describeFreeze(freeze: ActiveFreeze, env: string): string {
  const until = new Intl.DateTimeFormat("en-GB", {
    timeZone: freeze.timezone,
    weekday: "short",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).format(new Date(freeze.endsAt));
  return `${env} is in the freeze window "${freeze.name}" until ${until} ${freeze.timezone}${freeze.reason ? ` (${freeze.reason})` : ""}`;
}

export type { Window as FreezeWindow };
