import { z } from "zod";

/** Settings from the environment: where things are, never what the bot may do (that is shipbot.yaml). */
const settingsSchema = z.object({
  SHIPBOT_CONFIG: z.string().min(1).default("shipbot.yaml"),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "must start with redis:// or rediss://")
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
});

export interface Settings {
  configPath: string;
  redisUrl: string;
  kubeconfigPath: string | undefined;
  logLevel: z.infer<typeof settingsSchema>["LOG_LEVEL"];
  port: number;
  host: string;
}

export class SettingsError extends Error {
  override readonly name = "SettingsError";
}

export function readSettings(env: Record<string, string | undefined>): Settings {
  const parsed = settingsSchema.safeParse(
    Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== "")),
  );
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`);
    throw new SettingsError(`invalid environment:\n${problems.join("\n")}`);
  }
  const s = parsed.data;
  return {
    configPath: s.SHIPBOT_CONFIG,
    redisUrl: s.REDIS_URL,
    kubeconfigPath: s.KUBECONFIG,
    logLevel: s.LOG_LEVEL,
    port: s.PORT,
    host: s.HOST,
  };
}
