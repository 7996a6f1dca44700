import { ShipbotError } from "../core/errors.ts";

/** Longer than any branch or tag a person types; git itself allows more, chat input should not. */
export const maxRefLength = 200;

/** Characters a ref may contain here: a strict subset of what git allows, enough for branches, tags and shas. */
const allowed = /^[A-Za-z0-9._/+@-]+$/;

/** Shows a hostile ref back without control characters, markup or unbounded length. */
function shown(ref: string): string {
  const safe = ref.replace(/[^A-Za-z0-9._/+@-]/g, "?");
  return safe.length > 40 ? `${safe.slice(0, 40)}…` : safe;
}

/** Printable punctuation is shown as itself; markup and anything else by code point. */
function describeChar(char: string): string {
  return /^[!-~]$/.test(char) && !/[`<>&]/.test(char)
    ? `\`${char}\``
    : `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

function refuse(ref: string, why: string): never {
  throw new ShipbotError("usage", `\`${shown(ref)}\` is not a ref shipbot accepts: ${why}`, {
    retryable: false,
    hint: "give a branch, a tag or a commit sha of the service's repository, e.g. main, v1.42.0 or 3f2c1ab",
  });
}

/**
 * Refuses, before any request, refs that are not plain branch, tag or sha names of this repository: git's
 * forbidden sequences, path tricks, option-like names, and forms that point at another repository
 * (`owner:branch`, `owner/repo@ref`, URLs).
 */
export function assertSafeRef(ref: string): void {
  if (ref.length === 0) refuse(ref, "it is empty");
  if (ref.length > maxRefLength) refuse(ref, `it is ${ref.length} characters long (at most ${maxRefLength})`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(ref)) refuse(ref, "it contains a control character");
  if (/\s/.test(ref)) refuse(ref, "it contains a space");
  if (ref.startsWith("-")) refuse(ref, "it starts with `-`");
  if (ref.includes("..")) refuse(ref, "it contains `..`");
  if (ref.includes("@{")) refuse(ref, "it contains `@{`");
  for (const char of ["~", "^", ":", "\\", "?", "*", "[", "{", "}"]) {
    if (ref.includes(char)) {
      refuse(ref, char === ":" ? "`:` would name another repository or a path" : `it contains \`${char}\``);
    }
  }
  const bad = [...ref].find((char) => !allowed.test(char));
  if (bad !== undefined) refuse(ref, `it contains ${describeChar(bad)}`);
  if (ref === "@") refuse(ref, "`@` alone is not a ref");
  if (/^[^/@]+\/[^/@]+@/.test(ref)) refuse(ref, "it names another repository (owner/repo@ref)");
  if (ref.startsWith("/") || ref.endsWith("/") || ref.includes("//"))
    refuse(ref, "it has an empty path component");
  for (const part of ref.split("/")) {
    if (part.startsWith(".")) refuse(ref, "a component starts with `.`");
    if (part.endsWith(".lock")) refuse(ref, "a component ends with `.lock`");
  }
  if (ref.endsWith(".")) refuse(ref, "it ends with `.`");
}
