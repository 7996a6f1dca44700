import { ShipbotError } from "../core/errors.ts";

export interface SilenceRequest {
  /** Labels that must all be equal for an alert to be silenced. */
  labels: Record<string, string>;
  startsAt: number;
  endsAt: number;
  createdBy: string;
  comment: string;
}

/**
 * Creates a silence through Alertmanager's API v2 (`POST /api/v2/silences`) and returns its id.
 * Failures become an `upstream` error whose message carries no URL credentials.
 */
export async function createSilence(
  alertmanagerUrl: string,
  request: SilenceRequest,
  fetchImpl: typeof fetch = fetch,
): Promise<string> {
  const url = new URL(
    "api/v2/silences",
    alertmanagerUrl.endsWith("/") ? alertmanagerUrl : `${alertmanagerUrl}/`,
  );
  const body = {
    matchers: Object.entries(request.labels).map(([name, value]) => ({
      name,
      value,
      isRegex: false,
      isEqual: true,
    })),
    startsAt: new Date(request.startsAt).toISOString(),
    endsAt: new Date(request.endsAt).toISOString(),
    createdBy: request.createdBy,
    comment: request.comment,
  };
  let response: Response;
  try {
    response = await fetchImpl(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    throw new ShipbotError("upstream", "Alertmanager could not be reached to create the silence", {
      cause: error,
    });
  }
  const text = await response.text();
  if (!response.ok)
    throw new ShipbotError(
      response.status >= 500 ? "upstream" : "usage",
      `Alertmanager refused the silence (HTTP ${response.status}): ${text.slice(0, 200)}`,
    );
  const id = (JSON.parse(text) as { silenceID?: unknown }).silenceID;
  if (typeof id !== "string")
    throw new ShipbotError("upstream", "Alertmanager's answer carried no silence id");
  return id;
}
