export {
  type ConversationStore,
  type ConversationStoreOptions,
  createConversationStore,
  type TeamsConversationReference,
} from "./conversation-store.ts";
export {
  createTeamsAdapter,
  type TeamsAdapter,
  type TeamsAdapterOptions,
  type TeamsAppType,
  type TeamsCredentialsFactory,
  toAuthStatus,
} from "./create-teams-adapter.ts";
export {
  type CardActivity,
  callTeams,
  createTeamsChat,
  type TeamsConnector,
  type TeamsPaceOptions,
  type TeamsRetryOptions,
  toTeamsError,
} from "./create-teams-chat.ts";
export {
  type AdaptiveCard,
  adaptiveCardContentType,
  adaptiveCardLimits,
  renderAdaptiveCard,
  renderPlainText,
} from "./render-adaptive-card.ts";
export {
  fromTeamsText,
  parseCardAction,
  toConversation,
  toConversationId,
  toTeamsPrincipal,
} from "./to-chat-command.ts";
