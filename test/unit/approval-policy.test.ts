import { describe, expect, it } from "vitest";
import {
  describeApproval,
  describeRefusal,
  identitiesOf,
  reminderAt,
} from "../../src/core/approval-policy.ts";
import { type ApprovalPolicy, configSchema } from "../../src/core/config.ts";
import { loadExampleConfig } from "../helpers/example-config.ts";

const policy = (over: Partial<ApprovalPolicy> = {}): ApprovalPolicy => ({
  required: 2,
  from: ["sre", "security"],
  forbidRequester: true,
  expiresAfterMinutes: 30,
  rollbacks: "skip",
  allowForce: false,
  distinctGroups: false,
  forbidCommitAuthors: false,
  ...over,
});

describe("approval policy", () => {
  it("describes each rule on the card", () => {
    const at = Date.parse("2026-03-02T14:30:00Z");
    expect(describeApproval(policy(), "dev-1", at)).toBe(
      "Needs 2 approvals from sre or security (not dev-1) · expires 14:30 UTC",
    );
    expect(describeApproval(policy({ distinctGroups: true }), "dev-1", at, { commitAuthors: true })).toBe(
      "Needs 2 approvals, one each from sre and security (not dev-1, not the commit authors) · expires 14:30 UTC",
    );
    expect(
      describeApproval(policy({ distinctGroups: true, from: ["sre", "security", "dba"] }), "dev-1", at),
    ).toBe("Needs 2 approvals from different roles of sre, security, dba (not dev-1) · expires 14:30 UTC");
  });

  it("names the roles still open when a role already approved", () => {
    expect(
      describeRefusal(policy({ from: ["sre", "security", "dba"] }), { rule: "group", used: ["sre"] }),
    ).toBe("sre already approved; the next approval must come from security or dba");
  });

  it("reminds 10 minutes before expiry, at half-life for short expiries, never with 0", () => {
    expect(reminderAt(policy(), 60 * 60_000)).toBe(50 * 60_000);
    expect(reminderAt(policy({ expiresAfterMinutes: 5 }), 5 * 60_000)).toBe(150_000);
    expect(reminderAt(policy({ remindBeforeMinutes: 3 }), 60 * 60_000)).toBe(57 * 60_000);
    expect(reminderAt(policy({ remindBeforeMinutes: 0 }), 60 * 60_000)).toBeUndefined();
  });

  it("knows a chat user on GitHub by the people mapping and by the email the platform gives", () => {
    const config = configSchema.parse({
      ...loadExampleConfig(),
      people: { "slack:U0DEV00001": { github: "Octo-Cat", emails: ["Octo@Example.com"] } },
    });
    expect(
      identitiesOf(config, { id: "slack:U0DEV00001", name: "o", email: "o@corp.example", groups: [] }),
    ).toEqual(["login:octo-cat", "email:octo@example.com", "email:o@corp.example"]);
    expect(identitiesOf(config, { id: "slack:U0OTHER001", name: "x", groups: [] })).toEqual([]);
  });

  it("refuses a reminder after the expiry and a person with nothing to match", () => {
    const base = loadExampleConfig();
    const production = base.environments.production;
    const result = configSchema.safeParse({
      ...base,
      environments: {
        ...base.environments,
        production: { ...production, approval: { ...production?.approval, remindBeforeMinutes: 30 } },
      },
      people: { "slack:U0DEV00001": {}, "slack:U0DEV00002": { github: "not a login" } },
    });
    expect(result.error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`).sort()).toEqual([
      "environments.production.approval.remindBeforeMinutes: must be less than expiresAfterMinutes (30)",
      "people.slack:U0DEV00001: name a github login or at least one email",
      "people.slack:U0DEV00002.github: must be a GitHub login, e.g. octocat",
    ]);
  });
});
