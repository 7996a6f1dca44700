import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTeamsEmulator, type TeamsEmulator } from "./teams/index.ts";

const appId = "11111111-2222-3333-4444-555555555555";
let teams: TeamsEmulator;

beforeAll(async () => {
  teams = await startTeamsEmulator({ appId });
});
afterAll(async () => {
  await teams?.close();
});

function call(
  method: string,
  path: string,
  body: unknown,
  token: string | null = teams.issuer.signBotToken(appId, "https://api.botframework.com"),
) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return fetch(`${teams.url}${path}`, { method, headers, body: JSON.stringify(body) });
}

describe("Teams connector emulator", () => {
  it("publishes OpenID metadata and a JWKS whose keys are endorsed for msteams", async () => {
    const metadata = (await (await fetch(teams.openIdMetadataUrl)).json()) as {
      jwks_uri: string;
      issuer: string;
    };
    expect(metadata.issuer).toBe("https://api.botframework.com");
    const jwks = (await (await fetch(metadata.jwks_uri)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys[0]).toMatchObject({ kty: "RSA", kid: teams.issuer.kid, endorsements: ["msteams"] });
    expect(jwks.keys[0]?.d).toBeUndefined();
  });

  it("records sends, replies and updates, and refuses calls without the bot's token", async () => {
    const conversation = encodeURIComponent("19:c@thread.tacv2;messageid=1");
    expect(
      (await call("POST", `/v3/conversations/${conversation}/activities`, { type: "message" }, null)).status,
    ).toBe(401);
    const other = teams.issuer.signBotToken("another-app", "https://api.botframework.com");
    expect((await call("POST", `/v3/conversations/${conversation}/activities`, {}, other)).status).toBe(401);
    const sent = (await (
      await call("POST", `/v3/conversations/${conversation}/activities`, { text: "a" })
    ).json()) as { id: string };
    const reply = await call("POST", `/v3/conversations/${conversation}/activities/${sent.id}`, {
      text: "r",
    });
    expect(reply.status).toBe(201);
    expect(
      (await call("PUT", `/v3/conversations/${conversation}/activities/${sent.id}`, { text: "b" })).status,
    ).toBe(200);
    expect(
      (await call("PUT", `/v3/conversations/${conversation}/activities/nope`, { text: "b" })).status,
    ).toBe(404);
    const [first, second] = teams.activities("19:c@thread.tacv2");
    expect(first?.history.map((h) => h.text)).toEqual(["a", "b"]);
    expect(second?.replyToId).toBe(sent.id);
    expect(teams.calls().map((c) => `${c.kind} ${c.status}`)).toEqual([
      "send 401",
      "send 401",
      "send 201",
      "reply 201",
      "update 200",
      "update 404",
    ]);
  });

  it("enforces Teams' per-thread limit of 7 calls a second with 429 and Retry-After", async () => {
    const conversation = encodeURIComponent("a:rate");
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 8; i++) {
      const res = await call("POST", `/v3/conversations/${conversation}/activities`, { text: String(i) });
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get("retry-after");
    }
    expect(statuses).toEqual([201, 201, 201, 201, 201, 201, 201, 429]);
    expect(retryAfter).toBe("1");
    // Another thread has its own budget.
    expect(
      (await call("POST", `/v3/conversations/${encodeURIComponent("a:other")}/activities`, {})).status,
    ).toBe(201);
  });

  it("fails the next matching calls on request", async () => {
    const conversation = encodeURIComponent("a:faults");
    teams.fail({ status: 502, times: 2, kind: "send" });
    teams.fail({ status: 429, retryAfter: "3", kind: "send" });
    const statuses: Array<[number, string | null]> = [];
    for (let i = 0; i < 4; i++) {
      const res = await call("POST", `/v3/conversations/${conversation}/activities`, {});
      statuses.push([res.status, res.headers.get("retry-after")]);
    }
    expect(statuses).toEqual([
      [502, null],
      [502, null],
      [429, "3"],
      [201, null],
    ]);
  });
});
