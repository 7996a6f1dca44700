import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url);

/** The keys listed in the table of docs/operations.md's "Create the Secret" step. */
async function secretTableKeys(): Promise<string[]> {
  const doc = await readFile(new URL("docs/operations.md", root), "utf8");
  const section = doc.slice(doc.indexOf("### 3. Create the Secret"), doc.indexOf("### 4."));
  const rows = section.split("\n").filter((line) => /^\| `/.test(line));
  return rows.flatMap((row) =>
    [...(row.split("|")[1] ?? "").matchAll(/`([A-Za-z_]+)`/g)].map((m) => m[1] ?? ""),
  );
}

describe("docs/operations.md", () => {
  // A key spelled differently from what shipbot reads is silently ignored: the feature stays off.
  it("names in the Secret table only environment variables shipbot reads", async () => {
    const settings = await readFile(new URL("src/config/settings.ts", root), "utf8");
    const keys = await secretTableKeys();
    expect(keys.length).toBeGreaterThan(5);
    expect(keys.filter((key) => !new RegExp(`^\\s+${key}: z`, "m").test(settings))).toEqual([]);
  });
});
