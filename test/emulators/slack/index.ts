export { startSlackEmulator } from "./emulator.ts";
export { defaultRateRules } from "./rate-limits.ts";
export type {
  SlackCall,
  SlackEmulator,
  SlackEmulatorOptions,
  SlackEmulatorUser,
  SlackEmulatorUsergroup,
  SlackEphemeral,
  SlackMessage,
  SlackMessageVersion,
  SlackOpenedView,
  SlackRateRule,
} from "./types.ts";
