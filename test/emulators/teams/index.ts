export { type TeamsUser, teamsCardAction, teamsMessage } from "./activities.ts";
export {
  type ConnectorCall,
  type Fault,
  type RateWindow,
  type SentActivity,
  startTeamsEmulator,
  type TeamsEmulator,
  type TeamsEmulatorOptions,
  teamsThreadLimits,
} from "./emulator.ts";
export {
  botFrameworkAudience,
  channelIssuer,
  createTokenIssuer,
  type SignActivityTokenOptions,
  type TokenIssuer,
} from "./token-issuer.ts";
