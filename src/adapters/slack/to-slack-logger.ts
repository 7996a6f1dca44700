import { LogLevel, type Logger as SlackLogger } from "@slack/bolt";
import type { Logger } from "pino";

/**
 * Routes Bolt's and the Web API client's log lines into our pino logger, so they get the same
 * redaction and format. Their level follows ours; `setLevel` from the SDKs is ignored.
 */
export function toSlackLogger(log: Logger): SlackLogger {
  const child = log.child({ component: "slack-sdk" });
  const one = (m: unknown): string => {
    if (typeof m === "string") return m;
    if (m instanceof Error) return m.message;
    try {
      return JSON.stringify(m);
    } catch {
      return String(m);
    }
  };
  const text = (msg: unknown[]): string => msg.map(one).join(" ");
  const levelOf = (): LogLevel => {
    const level = child.level;
    if (level === "debug" || level === "trace") return LogLevel.DEBUG;
    if (level === "info") return LogLevel.INFO;
    if (level === "warn") return LogLevel.WARN;
    return LogLevel.ERROR;
  };
  return {
    debug: (...msg: unknown[]) => child.debug(text(msg)),
    info: (...msg: unknown[]) => child.info(text(msg)),
    warn: (...msg: unknown[]) => child.warn(text(msg)),
    error: (...msg: unknown[]) => child.error(text(msg)),
    setLevel: () => undefined,
    getLevel: levelOf,
    setName: () => undefined,
  };
}
