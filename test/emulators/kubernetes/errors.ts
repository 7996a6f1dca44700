/** API errors shaped like the API server's `Status` objects, so clients parse them as they would in a cluster. */

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
}

const reasons: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Expired",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly code: number;
  readonly reason: string;
  readonly details: StatusDetails | undefined;
  constructor(code: number, message: string, details?: StatusDetails, reason?: string) {
    super(message);
    this.code = code;
    this.reason = reason ?? reasons[code] ?? "Unknown";
    this.details = details;
  }

  toStatus(): Record<string, unknown> {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      ...(this.details === undefined ? {} : { details: this.details }),
      code: this.code,
    };
  }
}

export function notFound(resource: string, group: string, name: string): ApiError {
  const qualified = group === "" ? resource : `${resource}.${group}`;
  return new ApiError(404, `${qualified} "${name}" not found`, { name, group, kind: resource });
}

export function conflict(resource: string, group: string, name: string): ApiError {
  return new ApiError(
    409,
    `Operation cannot be fulfilled on ${resource}.${group} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group, kind: resource },
  );
}

export function invalid(kind: string, group: string, name: string, causes: string[]): ApiError {
  return new ApiError(422, `${kind}.${group} "${name}" is invalid: ${causes.join(", ")}`, {
    name,
    group,
    kind,
  });
}
