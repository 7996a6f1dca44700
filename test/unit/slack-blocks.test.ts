import { describe, expect, it } from "vitest";
import {
  blockLimits,
  fromActionId,
  renderBlocks,
  type SlackBlock,
} from "../../src/adapters/slack/render-blocks.ts";
import { type Card, createCard } from "../../src/core/card.ts";
import type { JobState } from "../../src/core/model.ts";
import { renderJobCard } from "../../src/core/render-job-card.ts";

function textsOf(blocks: SlackBlock[]): string[] {
  return blocks.flatMap((b) => {
    if (b.type === "section") return "text" in b ? [b.text.text] : b.fields.map((f) => f.text);
    if (b.type === "context") return b.elements.map((e) => e.text);
    return b.elements.map((e) => e.text.text);
  });
}

/** Every limit Slack enforces on a message's blocks. */
function expectWithinLimits(blocks: SlackBlock[]): void {
  expect(blocks.length).toBeLessThanOrEqual(blockLimits.blocksPerMessage);
  for (const block of blocks) {
    if (block.type === "section" && "text" in block) {
      expect(block.text.text.length).toBeGreaterThan(0);
      expect(block.text.text.length).toBeLessThanOrEqual(blockLimits.sectionText);
    } else if (block.type === "section") {
      expect(block.fields.length).toBeLessThanOrEqual(blockLimits.fieldsPerSection);
      for (const f of block.fields) expect(f.text.length).toBeLessThanOrEqual(blockLimits.fieldText);
    } else if (block.type === "actions") {
      expect(block.elements.length).toBeLessThanOrEqual(blockLimits.elementsPerActions);
      for (const b of block.elements) {
        expect(b.value.length).toBeLessThanOrEqual(blockLimits.buttonValue);
        expect(b.text.text.length).toBeLessThanOrEqual(blockLimits.buttonText);
        expect(b.action_id.length).toBeLessThanOrEqual(blockLimits.actionId);
      }
    } else {
      for (const e of block.elements) expect(e.text.length).toBeLessThanOrEqual(blockLimits.contextText);
    }
  }
  const ids = blocks.flatMap((b) => (b.type === "actions" ? b.elements.map((e) => e.action_id) : []));
  expect(new Set(ids).size).toBe(ids.length);
}

const state: JobState = {
  jobId: "jabc123def456",
  seq: 5,
  phase: "succeeded",
  text: "Deployed ghcr.io/acme/api:v2 in 3s",
  data: {
    kind: "deploy",
    service: "api",
    env: "staging",
    version: "v2",
    requestedBy: { id: "slack:U0DEMO0001", name: "dev-1" },
    conversation: { platform: "slack", channel: "C0DEPLOYS" },
    commandId: "t1",
    requestedAt: 0,
    traceId: "x",
  },
  fromImage: "ghcr.io/acme/api:v1",
  toImage: "ghcr.io/acme/api:v2",
  startedAt: 0,
  finishedAt: 3000,
  updatedAt: 3000,
};

describe("renderBlocks", () => {
  it("renders a job card: title, status line, fields, Roll back button, footer", () => {
    const { text, blocks } = renderBlocks(renderJobCard(state));
    expect(blocks.map((b) => b.type)).toEqual(["section", "section", "section", "actions", "context"]);
    expect(textsOf(blocks)).toEqual([
      "*🚀 api → staging · v2*",
      "✅ Deployed ghcr.io/acme/api:v2 in 3s",
      "*Image*\nghcr.io/acme/api:v1 → ghcr.io/acme/api:v2",
      "*Took*\n3s",
      "Roll back",
      "job jabc123def456 · requested by dev-1",
    ]);
    const actions = blocks[3];
    expect(actions?.type === "actions" && actions.elements[0]).toMatchObject({
      action_id: "shipbot:rollback",
      value: "jabc123def456",
      style: "danger",
    });
    expect(text).toBe("🚀 api → staging · v2\n✅ Deployed ghcr.io/acme/api:v2 in 3s");
    expectWithinLimits(blocks);
  });

  it("escapes Slack's control characters so text cannot ping or link", () => {
    const card = createCard("failure", "no service `<!channel>`", ["a & b <@U123>"]);
    const { text, blocks } = renderBlocks(card);
    expect(textsOf(blocks)).toEqual(["*no service `&lt;!channel&gt;`*", "a &amp; b &lt;@U123&gt;"]);
    expect(text).not.toContain("<");
  });

  it("summarises lines that do not fit in 50 blocks", () => {
    const lines = Array.from({ length: 500 }, (_, i) => `line ${i} ${"x".repeat(2000)}`);
    const { blocks } = renderBlocks({ ...createCard("info", "long", lines), footer: "f" });
    expectWithinLimits(blocks);
    const summary = blocks.at(-2);
    expect(summary?.type).toBe("context");
    const shown =
      textsOf(blocks)
        .join("\n")
        .match(/line \d+ /g)?.length ?? 0;
    expect(textsOf([summary as SlackBlock])[0]).toBe(`… ${500 - shown} more lines`);
    expect(shown).toBeGreaterThan(0);
  });

  it("keeps many short lines within the block budget and counts the rest", () => {
    const lines = Array.from({ length: 5000 }, (_, i) => `l${i}`);
    const { blocks } = renderBlocks(createCard("info", "many", lines));
    expectWithinLimits(blocks);
    const shown = textsOf(blocks).slice(1, -1).join("\n").split("\n").length;
    expect(textsOf(blocks).at(-1)).toBe(`… ${5000 - shown} more lines`);
  });

  it("cuts a single huge line, title and field to the section limits", () => {
    const card: Card = {
      ...createCard("info", "T".repeat(5000), ["y".repeat(10_000)]),
      fields: [{ label: "L", value: "v".repeat(5000) }],
      footer: "z".repeat(5000),
    };
    const { text, blocks } = renderBlocks(card);
    expectWithinLimits(blocks);
    expect(textsOf(blocks)[1]?.endsWith("…")).toBe(true);
    expect(text.length).toBeLessThanOrEqual(3000);
  });

  it("never cuts a surrogate pair in half", () => {
    const { blocks } = renderBlocks(createCard("info", "x", ["🚀".repeat(2000)]));
    const line = textsOf(blocks)[1] ?? "";
    expect(line.length).toBeLessThanOrEqual(blockLimits.sectionText);
    expect(line.endsWith("🚀…")).toBe(true);
  });

  it("splits many fields and buttons across blocks, drops oversized values, keeps ids unique", () => {
    const card: Card = {
      ...createCard("info", "t"),
      fields: Array.from({ length: 25 }, (_, i) => ({ label: `f${i}`, value: `${i}` })),
      actions: [
        ...Array.from({ length: 30 }, (_, i) => ({ id: "cancel", label: `Cancel ${i}`, value: `j${i}` })),
        { id: "rollback", label: "R".repeat(100), value: "v".repeat(2001) },
      ],
    };
    const { blocks } = renderBlocks(card);
    expectWithinLimits(blocks);
    const fields = blocks.filter((b) => b.type === "section" && "fields" in b);
    expect(fields).toHaveLength(2);
    const buttons = blocks.flatMap((b) => (b.type === "actions" ? b.elements : []));
    expect(buttons).toHaveLength(30);
    expect(buttons.map((b) => fromActionId(b.action_id))).toEqual(Array(30).fill("cancel"));
    expect(textsOf(blocks).at(-1)).toBe("6 more items not shown");
  });

  it("reads back action ids and ignores other apps' buttons", () => {
    expect(fromActionId("shipbot:rollback")).toBe("rollback");
    expect(fromActionId("shipbot:cancel#3")).toBe("cancel");
    expect(fromActionId("other:rollback")).toBeUndefined();
    expect(fromActionId("shipbot:")).toBeUndefined();
  });
});
