import { z } from "zod";
import { envArg } from "../src/core/args.ts";
import { defineCommand } from "../src/core/command-module.ts";
import { ShipbotError } from "../src/core/errors.ts";
import { reasonArg } from "./lock.ts";

const usage = "freeze <env> [until] [reason]";

/** "2h", "30m", "1d" from now, or an ISO time such as 2026-11-24T08:00:00Z. */
function parseUntil(text: string, now: number): number | undefined {
  const age = /^(\d{1,5})([mhd])$/i.exec(text);
  if (age)
    return (
      now +
      Number(age[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2]?.toLowerCase() as "m" | "h" | "d"]
    );
  const iso = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (!iso) return undefined;
  // Date.parse rolls a day the month does not have over into the next month (Nov 31 → Dec 1).
  const [year, month, day] = [Number(iso[1]), Number(iso[2]), Number(iso[3])];
  if (day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

/**
 * A word meant as the freeze's end, readable or not: a duration (`2h`, `1w`, `90min`), a date or a clock
 * time. One that cannot be read is refused: taken as the reason, it would leave a freeze with no end.
 */
const meantAsTime =
  /^(\d+(\.\d+)?(m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)|\d{4}-\d{2}-\d{2}.*|\d{1,2}:\d{2}.*)$/i;

export default defineCommand({
  name: "freeze",
  summary: "Freeze an environment: only rollbacks run until unfreeze (or until the given time)",
  usage,
  positional: ["env", "words"],
  rest: true,
  flags: [],
  schema: z.object({ env: envArg, words: reasonArg }),
  permission: "freeze",
  scope: ({ env }) => ({ env }),
  run: ({ env, words }, ctx) => {
    ctx.env(env);
    let [first = "", ...others] = (words ?? "").split(" ");
    // The usage line's `[until]` typed as a word: `freeze production until 2h`.
    if (first.toLowerCase() === "until" && meantAsTime.test(others[0] ?? "")) {
      first = others[0] ?? "";
      others = others.slice(1);
    }
    const looksLikeTime = meantAsTime.test(first);
    let until: number | undefined;
    if (looksLikeTime) {
      until = parseUntil(first, ctx.now);
      if (until === undefined) {
        throw new ShipbotError(
          "usage",
          `\`${first.slice(0, 40)}\` is not a time: use 2h, 30m, 1d or an ISO time with a zone (2026-11-24T08:00:00Z)`,
          { hint: `usage: ${usage}` },
        );
      }
      if (until <= ctx.now)
        throw new ShipbotError("usage", `\`${first}\` is in the past; a freeze must end in the future`, {
          hint: `usage: ${usage}`,
        });
    }
    const reason = (looksLikeTime ? others.join(" ") : (words ?? "")).trim();
    return {
      type: "control",
      control: {
        kind: "freeze",
        env,
        ...(until === undefined ? {} : { until }),
        ...(reason ? { reason } : {}),
      },
    };
  },
});
