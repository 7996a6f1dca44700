import { describe, expect, it } from "vitest";
import { adaptiveCardLimits, renderAdaptiveCard, renderPlainText } from "../../src/adapters/teams/index.ts";
import type { Card } from "../../src/core/card.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
const texts = (card: ReturnType<typeof renderAdaptiveCard>) =>
  card.body.flatMap((b) => b.inlines.map((i) => i.text));

function card(overrides: Partial<Card> = {}): Card {
  return {
    tone: "success",
    title: "🚀 api → staging · v2",
    lines: [],
    fields: [],
    actions: [],
    ...overrides,
  };
}

describe("renderAdaptiveCard", () => {
  it("renders a job card: title, lines, fields, footer and Action.Execute buttons", () => {
    const rendered = renderAdaptiveCard(
      renderJobCard({
        jobId: "j0abc123def45",
        seq: 5,
        phase: "succeeded",
        text: "Deployed ghcr.io/acme/api:v2 in 3s",
        data: {
          kind: "deploy",
          service: "api",
          env: "staging",
          version: "v2",
          requestedBy: { id: "teams:x", name: "Ada" },
          conversation: { platform: "teams", channel: "a:1" },
          commandId: "c1",
          requestedAt: 0,
          traceId: "t",
        },
        fromImage: "ghcr.io/acme/api:v1",
        toImage: "ghcr.io/acme/api:v2",
        startedAt: 0,
        finishedAt: 3000,
        updatedAt: 3000,
      }),
    );
    expect(rendered).toMatchObject({ type: "AdaptiveCard", version: "1.5" });
    expect(texts(rendered)).toEqual([
      "🚀 api → staging · v2",
      "✅ Deployed ghcr.io/acme/api:v2 in 3s",
      "Image: ",
      "ghcr.io/acme/api:v1 → ghcr.io/acme/api:v2",
      "Took: ",
      "3s",
      "job j0abc123def45 · requested by Ada",
    ]);
    expect(rendered.body[0]?.inlines[0]).toMatchObject({ weight: "Bolder", color: "Good" });
    expect(rendered.actions).toEqual([
      {
        type: "Action.Execute",
        title: "Roll back",
        verb: "rollback",
        data: { value: "j0abc123def45" },
        style: "destructive",
      },
    ]);
  });

  it("uses TextRuns only, so text from a command is shown as typed, never as markdown", () => {
    const rendered = renderAdaptiveCard(
      card({ lines: ["[click](https://evil.example) **bold** <at>x</at>"] }),
    );
    expect(rendered.body.every((b) => b.type === "RichTextBlock")).toBe(true);
    expect(texts(rendered)).toContain("[click](https://evil.example) **bold** <at>x</at>");
  });

  it("stays within Teams' size limit, summarising the lines it leaves out", () => {
    const lines = Array.from({ length: 400 }, (_, i) => `line ${i} ${"x".repeat(150)}`);
    const rendered = renderAdaptiveCard(card({ lines, footer: "job j1" }));
    expect(bytes(rendered)).toBeLessThanOrEqual(adaptiveCardLimits.cardBytes);
    const all = texts(rendered);
    const summary = all.find((t) => t.startsWith("… "));
    const shown = all.filter((t) => t.startsWith("line ")).length;
    expect(shown).toBeGreaterThan(10);
    expect(summary).toBe(`… ${400 - shown} more lines`);
    expect(all.at(-1)).toBe("job j1");
  });

  it("bounds every piece: a huge title, line, field or too many fields still fit", () => {
    const rendered = renderAdaptiveCard(
      card({
        title: "t".repeat(10_000),
        lines: ["l".repeat(50_000)],
        fields: Array.from({ length: 200 }, (_, i) => ({ label: `f${i}`, value: "v".repeat(900) })),
      }),
    );
    expect(bytes(rendered)).toBeLessThanOrEqual(adaptiveCardLimits.cardBytes);
    expect(rendered.body[0]?.inlines[0]?.text.length).toBe(adaptiveCardLimits.titleChars);
  });

  it("keeps at most six buttons and leaves out, rather than cuts, a value too long to carry", () => {
    const actions = Array.from({ length: 8 }, (_, i) => ({ id: `a${i}`, label: `A${i}`, value: `j${i}` }));
    actions[0] = { id: "long", label: "Long", value: "j".repeat(adaptiveCardLimits.actionValueChars + 1) };
    const rendered = renderAdaptiveCard(card({ actions, footer: "f" }));
    expect(rendered.actions?.map((a) => a.verb)).toEqual(["a1", "a2", "a3", "a4", "a5", "a6"]);
    expect(texts(rendered).at(-1)).toBe("f · 2 more actions not shown");
    expect(renderAdaptiveCard(card()).actions).toBeUndefined();
  });

  it("plain text for previews and invoke answers is title and lines", () => {
    expect(renderPlainText(card({ title: "T", lines: ["a", "b"] }))).toBe("T\na\nb");
  });
});
