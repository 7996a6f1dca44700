import { z } from "zod";

const milliseconds = z
  .string()
  .regex(/^[0-9]{1,6}$/, "must be a whole number of milliseconds")
  .transform(Number)
  .pipe(z.int().min(1));

/** Settings from the environment: where things are, never what the bot may do (that is shipbot.yaml). */
const settingsSchema = z.object({
  SHIPBOT_CONFIG: z.string().min(1).default("shipbot.yaml"),
  REDIS_URL: z
    .string()
    .regex(
      /^(rediss?|redis-cluster|redis-sentinel):\/\//,
      "must start with redis://, rediss://, redis-cluster:// or redis-sentinel://",
    )
    .default("redis://127.0.0.1:6379"),
  KUBECONFIG: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  PORT: z
    .string()
    .regex(/^[0-9]{1,5}$/, "must be a port number")
    .transform(Number)
    .pipe(z.int().min(0).max(65535))
    .default(8080),
  HOST: z.string().min(1).default("0.0.0.0"),
  SLACK_BOT_TOKEN: z
    .string()
    .regex(/^xoxb-/, "must be the app's bot token (starts with xoxb-)")
    .optional(),
  SLACK_SIGNING_SECRET: z.string().min(8).optional(),
  SLACK_APP_TOKEN: z
    .string()
    .regex(/^xapp-/, "must be an app-level token (starts with xapp-)")
    .optional(),
  SLACK_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  SLACK_POST_INTERVAL_MS: milliseconds.optional(),
  SLACK_UPDATE_INTERVAL_MS: milliseconds.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  GITHUB_TOKEN: z.string().min(1).optional(),
  GITHUB_APP_ID: z
    .string()
    .regex(/^[0-9]{1,12}$/, "must be the numeric app id")
    .optional(),
  GITHUB_APP_PRIVATE_KEY: z.string().min(1).optional(),
  GITHUB_APP_INSTALLATION_ID: z
    .string()
    .regex(/^[0-9]{1,14}$/, "must be the numeric installation id")
    .optional(),
  GITHUB_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  MicrosoftAppId: z.string().min(1).optional(),
  MicrosoftAppPassword: z.string().min(1).optional(),
  MicrosoftAppType: z.enum(["MultiTenant", "SingleTenant", "UserAssignedMSI"]).default("MultiTenant"),
  MicrosoftAppTenantId: z.string().min(1).optional(),
  SHIPBOT_TEAMS_DANGEROUSLY_ALLOW_UNAUTHENTICATED: z.enum(["true", "false"]).default("false"),
  SHIPBOT_DASHBOARD_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  SHIPBOT_DASHBOARD_USER: z.string().min(1).default("admin"),
  SHIPBOT_DASHBOARD_PASSWORD: z.string().min(12, "must be at least 12 characters").optional(),
  SHIPBOT_ALERTMANAGER_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  ALERTMANAGER_URL: z.url({ protocol: /^https?$/ }).optional(),
});

export interface Settings {
  configPath: string;
  redisUrl: string;
  kubeconfigPath: string | undefined;
  logLevel: z.infer<typeof settingsSchema>["LOG_LEVEL"];
  port: number;
  host: string;
  /** Present when SLACK_BOT_TOKEN is set. */
  slack:
    | {
        botToken: string;
        signingSecret?: string;
        appToken?: string;
        apiUrl?: string;
        /** Overrides of the spacing kept between posts (per channel) and edits (per workspace). */
        pace?: { postIntervalMs?: number; updateIntervalMs?: number };
      }
    | undefined;
  /** OTLP/HTTP endpoint for traces (e.g. http://collector:4318/v1/traces); traces are off without it. */
  tracesEndpoint: string | undefined;
  /** Present when a GitHub token or app is configured. */
  github:
    | {
        auth:
          | { kind: "token"; token: string }
          | { kind: "app"; appId: number; privateKey: string; installationId: number };
        baseUrl?: string;
      }
    | undefined;
  /** Present when MicrosoftAppId is set (or unauthenticated Teams is explicitly allowed, for local emulators). */
  teams:
    | {
        appId: string;
        appPassword?: string;
        appType: "MultiTenant" | "SingleTenant" | "UserAssignedMSI";
        tenantId?: string;
        dangerouslyAllowUnauthenticated: boolean;
      }
    | undefined;
  /** The read-only queue dashboard; present (and mounted) only when a token or a password is set. */
  dashboard: { token?: string; username: string; password?: string } | undefined;
  /** The Alertmanager webhook (mounted only when its token is set) and Alertmanager's URL for silences. */
  alerts: { token?: string; alertmanagerUrl?: string };
}

export class SettingsError extends Error {
  override readonly name = "SettingsError";
}

function readGitHub(s: z.infer<typeof settingsSchema>): Settings["github"] {
  const base = s.GITHUB_API_URL === undefined ? {} : { baseUrl: s.GITHUB_API_URL };
  if (
    s.GITHUB_APP_ID !== undefined ||
    s.GITHUB_APP_PRIVATE_KEY !== undefined ||
    s.GITHUB_APP_INSTALLATION_ID !== undefined
  ) {
    if (
      s.GITHUB_APP_ID === undefined ||
      s.GITHUB_APP_PRIVATE_KEY === undefined ||
      s.GITHUB_APP_INSTALLATION_ID === undefined
    ) {
      throw new SettingsError(
        "invalid environment:\n  GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY and GITHUB_APP_INSTALLATION_ID go together (or use GITHUB_TOKEN)",
      );
    }
    // Keys pasted into one line keep their line breaks as \n.
    const privateKey = s.GITHUB_APP_PRIVATE_KEY.replaceAll("\\n", "\n");
    return {
      auth: {
        kind: "app",
        appId: Number(s.GITHUB_APP_ID),
        privateKey,
        installationId: Number(s.GITHUB_APP_INSTALLATION_ID),
      },
      ...base,
    };
  }
  if (s.GITHUB_TOKEN !== undefined) return { auth: { kind: "token", token: s.GITHUB_TOKEN }, ...base };
  return undefined;
}

export function readSettings(env: Record<string, string | undefined>): Settings {
  const parsed = settingsSchema.safeParse(
    Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== "")),
  );
  if (!parsed.success) {
    // Never echo a value: these variables hold secrets.
    const problems = parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`);
    throw new SettingsError(`invalid environment:\n${problems.join("\n")}`);
  }
  const s = parsed.data;
  if (
    s.SLACK_BOT_TOKEN !== undefined &&
    s.SLACK_APP_TOKEN === undefined &&
    s.SLACK_SIGNING_SECRET === undefined
  ) {
    throw new SettingsError(
      "invalid environment:\n  SLACK_SIGNING_SECRET: required with SLACK_BOT_TOKEN for HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)",
    );
  }
  return {
    configPath: s.SHIPBOT_CONFIG,
    redisUrl: s.REDIS_URL,
    kubeconfigPath: s.KUBECONFIG,
    logLevel: s.LOG_LEVEL,
    port: s.PORT,
    host: s.HOST,
    slack:
      s.SLACK_BOT_TOKEN === undefined
        ? undefined
        : {
            botToken: s.SLACK_BOT_TOKEN,
            ...(s.SLACK_SIGNING_SECRET === undefined ? {} : { signingSecret: s.SLACK_SIGNING_SECRET }),
            ...(s.SLACK_APP_TOKEN === undefined ? {} : { appToken: s.SLACK_APP_TOKEN }),
            ...(s.SLACK_API_URL === undefined ? {} : { apiUrl: s.SLACK_API_URL }),
            ...(s.SLACK_POST_INTERVAL_MS === undefined && s.SLACK_UPDATE_INTERVAL_MS === undefined
              ? {}
              : {
                  pace: {
                    ...(s.SLACK_POST_INTERVAL_MS === undefined
                      ? {}
                      : { postIntervalMs: s.SLACK_POST_INTERVAL_MS }),
                    ...(s.SLACK_UPDATE_INTERVAL_MS === undefined
                      ? {}
                      : { updateIntervalMs: s.SLACK_UPDATE_INTERVAL_MS }),
                  },
                }),
          },
    tracesEndpoint: s.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    github: readGitHub(s),
    teams:
      s.MicrosoftAppId === undefined && s.SHIPBOT_TEAMS_DANGEROUSLY_ALLOW_UNAUTHENTICATED !== "true"
        ? undefined
        : {
            appId: s.MicrosoftAppId ?? "",
            appType: s.MicrosoftAppType,
            dangerouslyAllowUnauthenticated: s.SHIPBOT_TEAMS_DANGEROUSLY_ALLOW_UNAUTHENTICATED === "true",
            ...(s.MicrosoftAppPassword === undefined ? {} : { appPassword: s.MicrosoftAppPassword }),
            ...(s.MicrosoftAppTenantId === undefined ? {} : { tenantId: s.MicrosoftAppTenantId }),
          },
    dashboard:
      s.SHIPBOT_DASHBOARD_TOKEN === undefined && s.SHIPBOT_DASHBOARD_PASSWORD === undefined
        ? undefined
        : {
            username: s.SHIPBOT_DASHBOARD_USER,
            ...(s.SHIPBOT_DASHBOARD_TOKEN === undefined ? {} : { token: s.SHIPBOT_DASHBOARD_TOKEN }),
            ...(s.SHIPBOT_DASHBOARD_PASSWORD === undefined ? {} : { password: s.SHIPBOT_DASHBOARD_PASSWORD }),
          },
    alerts: {
      ...(s.SHIPBOT_ALERTMANAGER_TOKEN === undefined ? {} : { token: s.SHIPBOT_ALERTMANAGER_TOKEN }),
      ...(s.ALERTMANAGER_URL === undefined ? {} : { alertmanagerUrl: s.ALERTMANAGER_URL }),
    },
  };
}
