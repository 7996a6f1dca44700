import { isShipbotError, ShipbotError } from "../../core/errors.ts";
import type { Target } from "../port.ts";

/** What shipbot was doing when a call failed, for a message that helps the person reading it in chat. */
export interface ErrorContext {
  target: Target;
  /** RBAC verb, e.g. "get", "patch", "list", "watch". */
  verb: string;
  /** Resource the call touched, default "deployments". */
  resource?: string;
}

interface HttpFailure {
  status: number;
  /** The API server's Status message, when it sent one. */
  message: string | undefined;
}

/** client-node throws ApiException (`.code`, `.body`); its Watch rejects with `.statusCode`. */
function httpFailure(error: unknown): HttpFailure | undefined {
  // DOMException (timeouts, aborts) also has a numeric `code`, which is no HTTP status.
  if (typeof error !== "object" || error === null || error instanceof DOMException) return undefined;
  const candidate = error as { code?: unknown; statusCode?: unknown; body?: unknown };
  const status =
    typeof candidate.code === "number"
      ? candidate.code
      : typeof candidate.statusCode === "number"
        ? candidate.statusCode
        : undefined;
  if (status === undefined || status < 100 || status > 599) return undefined;
  let body = candidate.body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      body = undefined;
    }
  }
  const message =
    typeof body === "object" && body !== null && typeof (body as { message?: unknown }).message === "string"
      ? (body as { message: string }).message
      : undefined;
  return { status, message };
}

/**
 * Maps any failure of a Kubernetes call to a ShipbotError, once, at the edge. Messages name the target and
 * never include request headers (the bearer token lives there).
 */
export function toExecutorError(error: unknown, context: ErrorContext): ShipbotError {
  if (isShipbotError(error)) return error;
  const { namespace, deployment } = context.target;
  const resource = context.resource ?? "deployments";
  const failure = httpFailure(error);
  if (failure === undefined) {
    const name = error instanceof Error ? error.name : "error";
    const timedOut = name === "TimeoutError" || (error instanceof Error && /timeout/i.test(error.message));
    return new ShipbotError(
      "upstream",
      timedOut
        ? `the Kubernetes API server did not answer in time (${context.verb} ${resource} in ${namespace})`
        : `could not reach the Kubernetes API server (${context.verb} ${resource} in ${namespace})`,
      { cause: error, retryable: true },
    );
  }
  const { status } = failure;
  if (status === 404) {
    // Only a call on the Deployment itself (or its scale subresource) means the Deployment is gone; a 404
    // elsewhere, such as listing its ReplicaSets, must not send the reader looking for a missing Deployment.
    const message =
      resource === "deployments" || resource.startsWith("deployments/")
        ? `deployment ${deployment} not found in namespace ${namespace}`
        : `could not ${context.verb} ${resource} of deployment ${deployment} in namespace ${namespace}: the Kubernetes API answered 404 (not found)`;
    return new ShipbotError("not_found", message, { cause: error, retryable: false });
  }
  if (status === 401 || status === 403) {
    return new ShipbotError(
      "forbidden",
      `shipbot's Kubernetes credentials may not ${context.verb} ${resource} in ${namespace}: check its RBAC Role`,
      { cause: error, retryable: false },
    );
  }
  if (status === 409) {
    return new ShipbotError(
      "conflict",
      `${deployment} in ${namespace} was changed by someone else while shipbot was updating it`,
      { cause: error, retryable: true },
    );
  }
  if (status === 400 || status === 422) {
    const detail = failure.message === undefined ? "" : `: ${failure.message}`;
    return new ShipbotError(
      "upstream",
      `the Kubernetes API rejected the change to ${deployment} in ${namespace}${detail}`,
      {
        cause: error,
        retryable: false,
      },
    );
  }
  return new ShipbotError(
    "upstream",
    `the Kubernetes API answered HTTP ${status} to ${context.verb} ${resource} in ${namespace}`,
    { cause: error, retryable: status === 429 || status >= 500 },
  );
}
