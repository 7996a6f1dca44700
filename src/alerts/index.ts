export {
  type AlertKeys,
  alertCardPrefix,
  createAlertKeys,
  incidentsKey,
  toAlertCardId,
} from "./alert-keys.ts";
export { type WebhookPayload, webhookPayloadSchema } from "./alertmanager-payload.ts";
export {
  type AlertChannel,
  type AlertsConfig,
  alertsConfigSchema,
  defaultAlertsConfig,
  isIncidentSeverity,
  routeAlert,
} from "./alerts-config.ts";
export {
  type AlertActionOptions,
  alertActions,
  createAlertActionHandler,
  isAlertAction,
} from "./create-alert-action-handler.ts";
export { type AlertCardSourceOptions, createAlertCardSource } from "./create-alert-card-source.ts";
export { type AlertInbox, createAlertInbox } from "./create-alert-inbox.ts";
export { type AlertsRouteOptions, createAlertsRoute } from "./create-alerts-route.ts";
export { createSilence } from "./create-silence.ts";
export { renderAlertCard } from "./render-alert-card.ts";
export {
  type AlertProcessor,
  type AlertProcessorOptions,
  startAlertProcessor,
} from "./start-alert-processor.ts";
