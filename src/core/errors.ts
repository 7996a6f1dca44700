/**
 * One error type for the whole bot. The code is a closed set so that every boundary (chat adapter,
 * worker, HTTP) can decide what to do without string matching; `message` is always safe to show in chat.
 */
export const errorCodes = [
  "usage",
  "forbidden",
  "not_found",
  "conflict",
  "needs_approval",
  "locked",
  "upstream",
  "unavailable",
  "timeout",
  "internal",
] as const;

export type ErrorCode = (typeof errorCodes)[number];

export interface ShipbotErrorOptions {
  cause?: unknown;
  /** Whether trying the same thing again later may succeed. */
  retryable?: boolean;
  /** A hint shown under the message, e.g. the command's usage line. */
  hint?: string;
}

export class ShipbotError extends Error {
  override readonly name = "ShipbotError";
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: ShipbotErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable =
      options.retryable ?? (code === "upstream" || code === "unavailable" || code === "timeout");
    this.hint = options.hint;
  }
}

/** Checks by name as well as by class: errors cross process boundaries and module copies. */
export function isShipbotError(error: unknown): error is ShipbotError {
  return (
    error instanceof ShipbotError ||
    (typeof error === "object" &&
      error !== null &&
      (error as { name?: unknown }).name === "ShipbotError" &&
      typeof (error as { code?: unknown }).code === "string")
  );
}

/** Normalises anything thrown into a ShipbotError without leaking internals into the chat message. */
export function toShipbotError(error: unknown): ShipbotError {
  if (isShipbotError(error)) return error;
  return new ShipbotError("internal", "something went wrong inside shipbot; the details are in its log", {
    cause: error,
    retryable: false,
  });
}
