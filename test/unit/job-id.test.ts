import { describe, expect, it } from "vitest";
import { createBatchId, createJobId, toSharedCommandId } from "../../src/queue/job-id.ts";

describe("job ids from command ids", () => {
  it("keeps platforms apart for event ids: the same id from Slack and Teams is two commands", () => {
    expect(createJobId("slack", "Ev0001", 0)).not.toBe(createJobId("teams", "Ev0001", 0));
    expect(createBatchId("slack", "Ev0001")).not.toBe(createBatchId("teams", "Ev0001"));
    expect(createJobId("slack", "button-rollback-jabc123", 0)).not.toBe(
      createJobId("teams", "button-rollback-jabc123", 0),
    );
  });

  it("gives a shared command one job on every platform, apart from any event id", () => {
    const shared = toSharedCommandId("alert-rollback-api-production-jabc123");
    expect(createJobId("slack", shared, 0)).toBe(createJobId("teams", shared, 0));
    expect(createJobId("shell", shared, 0)).toBe(createJobId("teams", shared, 0));
    expect(createJobId("slack", shared, 0)).not.toBe(createJobId("slack", shared, 1));
    expect(createJobId("slack", shared, 0)).not.toBe(
      createJobId("slack", "alert-rollback-api-production-jabc123", 0),
    );
  });
});
