export { classifySlackBody, type SlackBodyKind } from "./classify-slack-body.ts";
export {
  createGroupResolver,
  type GroupResolver,
  slackGroupIdsOf,
  toSlackGroupId,
} from "./create-group-resolver.ts";
export { createSlackAdapter, type SlackAdapter, type SlackAdapterOptions } from "./create-slack-adapter.ts";
export {
  createSlackChat,
  createSlackWebClient,
  type SlackChat,
  type SlackPaceOptions,
  toSlackError,
} from "./create-slack-chat.ts";
export { blockLimits, type RenderedMessage, renderBlocks, type SlackBlock } from "./render-blocks.ts";
export { slackBotEvents, slackBotScopes, slackMethodScopes, slackSlashCommands } from "./slack-api.ts";
export { computeSlackSignature, verifySlackSignature } from "./verify-slack-signature.ts";
