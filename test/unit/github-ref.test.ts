import { describe, expect, it } from "vitest";
import { isShipbotError, type ShipbotError } from "../../src/core/errors.ts";
import { assertSafeRef } from "../../src/github/assert-safe-ref.ts";
import { toImageTag } from "../../src/github/to-image-tag.ts";

function refusal(run: () => unknown): ShipbotError {
  try {
    run();
  } catch (error) {
    if (isShipbotError(error)) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

const sha = "3f2c1ab9d1e0c2aa000000000000000000000000";

describe("assertSafeRef", () => {
  it.each([
    "main",
    "v1.42.0",
    "release/2024-01",
    "feature/JIRA-12_fix",
    "3f2c1ab",
    sha,
    "refs/heads/main",
    "tags/v1.0.0+build.7",
    "user@feature",
  ])("accepts %s", (ref) => {
    expect(() => assertSafeRef(ref)).not.toThrow();
  });

  it.each([
    ["", "empty"],
    ["a".repeat(201), "201 characters"],
    ["main..evil", "`..`"],
    ["../../etc/passwd", "`..`"],
    ["HEAD~1", "`~`"],
    ["main^", "`^`"],
    ["other-org:main", "another repository"],
    ["https://evil.example/x", "another repository"],
    ["acme/web@main", "another repository"],
    ["main\\x", "`\\`"],
    ["main branch", "space"],
    ["main\u0000", "control character"],
    ["main\nrm -rf", "control character"],
    ["-rf", "starts with `-`"],
    ["--upload-pack=x", "starts with `-`"],
    ["main@{1}", "`@{`"],
    ["$(id)", "`$`"],
    ["<!channel>", "U+003C"],
    ["mainé", "U+00E9"],
    ["a;b", "`;`"],
    ["`id`", "U+0060"],
    ["/main", "empty path component"],
    ["main/", "empty path component"],
    ["a//b", "empty path component"],
    ["feature/.hidden", "starts with `.`"],
    ["main.lock", "`.lock`"],
    ["@", "`@` alone"],
  ])("refuses %j (%s)", (ref, why) => {
    const error = refusal(() => assertSafeRef(ref));
    expect(error.code).toBe("usage");
    expect(error.message).toContain(why);
    expect(error.message.length).toBeLessThan(200);
    // Hostile input is never echoed raw.
    expect([...error.message].every((c) => c.charCodeAt(0) >= 0x20 && c !== "<")).toBe(true);
  });
});

describe("toImageTag", () => {
  it("renders each placeholder", () => {
    expect(toImageTag("{sha7}", { ref: "main", kind: "branch", sha })).toBe("3f2c1ab");
    expect(toImageTag("{sha}", { ref: "main", kind: "branch", sha })).toBe(sha);
    expect(toImageTag("{tag}", { ref: "v1.42.0", kind: "tag", sha })).toBe("v1.42.0");
    expect(toImageTag("{tag}", { ref: "refs/tags/v1.42.0", kind: "tag", sha })).toBe("v1.42.0");
    expect(toImageTag("{ref}-{sha7}", { ref: "release/2.1", kind: "branch", sha })).toBe(
      "release-2.1-3f2c1ab",
    );
  });

  it("needs a tag for {tag}, and a valid template and result", () => {
    expect(refusal(() => toImageTag("{tag}", { ref: "main", kind: "branch", sha })).message).toBe(
      "images of this service are tagged by git tag: deploy a tag such as v1.2.3, not branch `main`",
    );
    expect(refusal(() => toImageTag("{shaa}", { ref: "main", kind: "branch", sha })).code).toBe("usage");
    expect(refusal(() => toImageTag("a/{sha7}", { ref: "main", kind: "branch", sha })).code).toBe("usage");
    expect(refusal(() => toImageTag("{ref}", { ref: "-x", kind: "branch", sha })).message).toContain(
      "not a valid image tag",
    );
  });
});
