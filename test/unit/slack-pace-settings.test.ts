import { describe, expect, it } from "vitest";
import { readSettings, SettingsError } from "../../src/config/settings.ts";

const slack = { SLACK_BOT_TOKEN: "xoxb-test-token", SLACK_SIGNING_SECRET: "signing-secret" };

describe("Slack pacing settings", () => {
  it("are absent unless set, and carried as numbers when set", () => {
    expect(readSettings(slack).slack?.pace).toBeUndefined();
    expect(readSettings({ ...slack, SLACK_UPDATE_INTERVAL_MS: "63" }).slack?.pace).toEqual({
      updateIntervalMs: 63,
    });
    expect(
      readSettings({ ...slack, SLACK_POST_INTERVAL_MS: "55", SLACK_UPDATE_INTERVAL_MS: "63" }).slack?.pace,
    ).toEqual({ postIntervalMs: 55, updateIntervalMs: 63 });
  });

  it("refuse what is not a positive whole number of milliseconds, naming the setting", () => {
    for (const value of ["0", "1.5", "-3", "fast", "10000000"]) {
      expect(() => readSettings({ ...slack, SLACK_POST_INTERVAL_MS: value })).toThrow(SettingsError);
      expect(() => readSettings({ ...slack, SLACK_POST_INTERVAL_MS: value })).toThrow(
        /SLACK_POST_INTERVAL_MS: /,
      );
    }
  });
});
