import { ShipbotError } from "./errors.ts";

export const maxCommandLength = 1000;

export interface Tokens {
  /** The command word, lowercased, without a leading `/`. */
  name: string;
  positional: string[];
  /** `--dry-run` → { "dry-run": true }, `--reason=x` → { reason: "x" } */
  flags: Record<string, string | true>;
}

/**
 * Characters that are invisible or change how text is displayed. A command containing one may not
 * say what it appears to say, so it is refused rather than cleaned.
 */
const invisible =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these characters are what the check refuses.
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/u;

/** Chat clients turn straight quotes into curly ones; treat them alike. */
const quotePairs: Record<string, string> = { '"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019" };

/** Any character that opens a quote. */
const anyQuote = /["'\u201c\u2018]/;

/** Words of a command without quotes: runs of non-space (the common case, without a string per character). */
function splitPlain(text: string): string[] {
  const trimmed = text.trim();
  return trimmed === "" ? [] : trimmed.split(/\s+/u);
}

/** Closers that double as apostrophes: inside a quoted run, one followed by a letter is text (`'it's down'`). */
const apostrophes = new Set(["'", "\u2019"]);

/**
 * Words of a command with quotes: a quoted run is one word, whatever it contains. A quote opens a run only
 * at the start of a word or after `=` (`--break-glass="…"`): inside a word it is an apostrophe (`can't`,
 * `checkout's`), which people type in reasons and must not be read as an unclosed quote.
 */
function splitQuoted(text: string): string[] {
  const words: string[] = [];
  let current = "";
  let inWord = false;
  let quote: string | undefined;
  const chars = [...text.trim()];
  for (const [i, ch] of chars.entries()) {
    if (quote !== undefined) {
      const next = chars[i + 1];
      const closes =
        ch === quote && !(apostrophes.has(ch) && next !== undefined && /[\p{L}\p{N}]/u.test(next));
      if (closes) quote = undefined;
      else current += ch;
      continue;
    }
    const close = quotePairs[ch];
    if (close !== undefined && (!inWord || current.endsWith("="))) {
      quote = close;
      inWord = true;
    } else if (/\s/u.test(ch)) {
      if (inWord) words.push(current);
      current = "";
      inWord = false;
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new ShipbotError("usage", "a quote is not closed");
  if (inWord) words.push(current);
  return words;
}

/** Splits a typed command into words, honouring quotes and `--flags`. */
/**
 * Phones and some desktops turn a typed `--` into an em or en dash ("smart punctuation"), as they turn
 * quotes curly: `—dry-run` is the option `--dry-run`. Only a dash directly followed by a letter; a dash
 * standing alone stays a word.
 */
function fromSmartDash(word: string): string {
  // A character code first: this runs for every word of every command.
  const first = word.charCodeAt(0);
  if (first !== 0x2013 && first !== 0x2014) return word;
  return /^.[a-z]/i.test(word) ? `--${word.slice(1)}` : word;
}

export function tokenize(text: string): Tokens {
  if (text.length > maxCommandLength) {
    throw new ShipbotError(
      "usage",
      `that command is ${text.length} characters long; the limit is ${maxCommandLength}`,
    );
  }
  const bad = invisible.exec(text);
  if (bad) {
    const code = bad[0].codePointAt(0)?.toString(16).toUpperCase().padStart(4, "0");
    throw new ShipbotError(
      "usage",
      `the command contains an invisible or control character (U+${code}) at position ${bad.index + 1}; retype it without pasting`,
    );
  }
  const words = anyQuote.test(text) ? splitQuoted(text) : splitPlain(text);

  const [first, ...rest] = words;
  if (first === undefined || first === "/" || first === "") {
    throw new ShipbotError("usage", "no command given; try `help`");
  }
  const name = first.replace(/^\//, "").toLowerCase();
  const positional: string[] = [];
  const flags: Record<string, string | true> = {};
  for (const raw of rest) {
    const word = fromSmartDash(raw);
    if (word.startsWith("--") && word.length > 2) {
      const eq = word.indexOf("=");
      const key = (eq === -1 ? word.slice(2) : word.slice(2, eq)).toLowerCase();
      if (!/^[a-z][a-z0-9-]{0,30}$/.test(key))
        throw new ShipbotError("usage", `\`${word}\` is not a valid option`);
      flags[key] = eq === -1 ? true : word.slice(eq + 1);
    } else {
      positional.push(word);
    }
  }
  return { name, positional, flags };
}
