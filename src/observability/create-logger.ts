import { type DestinationStream, type Logger, pino } from "pino";

/** Paths whose values never reach a log line, wherever they appear in a logged object. */
export const redactedPaths = [
  "token",
  "*.token",
  "password",
  "*.password",
  "secret",
  "*.secret",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "config.headers.Authorization",
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      name: "shipbot",
      level,
      redact: { paths: redactedPaths, censor: "[redacted]" },
      base: { pid: process.pid },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}
