import { z } from "zod";
import { imageTagSchema, shortName } from "./names.ts";

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
