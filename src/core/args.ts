import { z } from "zod";
import { imageTagSchema, isShortName, shortName } from "./names.ts";

/** Argument schemas shared by command modules. */
export const serviceArg = shortName;
export const envArg = shortName;
export const versionArg = imageTagSchema;
export const dryRunFlag = z.literal(true, { error: "takes no value" }).optional();

/** A whole number typed in chat (`4`, not `4.0`, `+4` or `0x4`). */
export function wholeNumberArg(min: number, max: number) {
  return z
    .string()
    .regex(/^[0-9]{1,7}$/, "must be a whole number")
    .transform(Number)
    .pipe(z.int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
}

/** The most targets one command may name or expand to (`deploy *` in an environment of many services). */
export const maxTargets = 1000;

/**
 * One service (`api`), a comma-separated list (`api,web,worker`) or `*` (every service of the
 * environment the user may operate). Names are checked against the config later, with suggestions.
 */
export const serviceListArg = z.string().transform((text, ctx): string[] | "*" => {
  if (text === "*") return "*";
  const names = new Set<string>();
  for (const name of text.split(",")) {
    if (isShortName(name)) {
      names.add(name);
      continue;
    }
    const checked = shortName.safeParse(name);
    if (!checked.success) {
      const reason = checked.error.issues[0]?.message ?? "invalid";
      // In a list, say which name is wrong; a single name reads as today.
      const message = !text.includes(",")
        ? reason
        : name === ""
          ? "the list has an empty name"
          : `\`${name}\` ${reason}`;
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    }
    names.add(name);
  }
  if (names.size > maxTargets) {
    ctx.addIssue({ code: "custom", message: `at most ${maxTargets} services per command` });
    return z.NEVER;
  }
  return [...names];
});
