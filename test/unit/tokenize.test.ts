import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isShipbotError } from "../../src/core/errors.ts";
import { maxCommandLength, tokenize } from "../../src/core/tokenize.ts";

describe("tokenize", () => {
  it("splits words, strips the slash and lowercases the command", () => {
    expect(tokenize("/Deploy api staging v2")).toEqual({
      name: "deploy",
      positional: ["api", "staging", "v2"],
      flags: {},
    });
  });

  it("reads an option whose dashes smart punctuation turned into an em or en dash", () => {
    expect(tokenize("/deploy api staging v2 \u2014dry-run").flags).toEqual({ "dry-run": true });
    expect(tokenize("/deploy api staging v2 \u2013force").flags).toEqual({ force: true });
    expect(tokenize("deploy api prod v2 \u2014break-glass=\u201cdb down\u201d").flags).toEqual({
      "break-glass": "db down",
    });
    // A dash standing alone is a word of a reason.
    expect(tokenize("lock api staging migration \u2014 part 2").positional).toEqual([
      "api",
      "staging",
      "migration",
      "\u2014",
      "part",
      "2",
    ]);
  });

  it("keeps quoted words together, straight or curly quotes", () => {
    expect(tokenize('lock api staging "db migration running"').positional).toEqual([
      "api",
      "staging",
      "db migration running",
    ]);
    expect(tokenize("lock api staging \u201cbig release\u201d").positional).toEqual([
      "api",
      "staging",
      "big release",
    ]);
  });

  it("reads --flags with and without values", () => {
    expect(tokenize("deploy api staging v2 --dry-run --reason=hotfix").flags).toEqual({
      "dry-run": true,
      reason: "hotfix",
    });
  });

  it("reads an apostrophe inside a word as text, in reasons quoted or not", () => {
    expect(tokenize("lock api staging can't deploy, checkout's cache is cold").positional).toEqual([
      "api",
      "staging",
      "can't",
      "deploy,",
      "checkout's",
      "cache",
      "is",
      "cold",
    ]);
    expect(tokenize("lock api staging ops\u2019 window").positional).toEqual([
      "api",
      "staging",
      "ops\u2019",
      "window",
    ]);
    expect(tokenize(`deploy api production v2 --break-glass "it's down" --dry-run`)).toEqual({
      name: "deploy",
      positional: ["api", "production", "v2", "it's down"],
      flags: { "break-glass": true, "dry-run": true },
    });
    expect(tokenize(`deploy api production v2 --break-glass='checkout's down'`).flags).toEqual({
      "break-glass": "checkout's down",
    });
  });

  it("refuses an unclosed quote", () => {
    expect(() => tokenize('deploy "api staging')).toThrow(/quote is not closed/);
  });

  it("refuses over-long input, naming the limit", () => {
    expect(() => tokenize(`deploy ${"a".repeat(maxCommandLength)}`)).toThrow(/limit is 1000/);
  });

  it("refuses zero-width and control characters rather than guessing what was meant", () => {
    expect(() => tokenize("deploy a\u200bpi staging v2")).toThrow(/U\+200B\) at position 9/);
    expect(() => tokenize("deploy api\u0007 staging v2")).toThrow(/U\+0007/);
    expect(() => tokenize("deploy api staging v2\u202e")).toThrow(/invisible/);
  });

  it("refuses an empty command", () => {
    expect(() => tokenize("   ")).toThrow(/no command given/);
    expect(() => tokenize("/")).toThrow(/no command given/);
  });

  it("never throws anything but a usage error, whatever the input", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 1200 }), (text) => {
        try {
          const t = tokenize(text);
          expect(t.name.length).toBeGreaterThan(0);
        } catch (error) {
          expect(isShipbotError(error) && error.code === "usage").toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
