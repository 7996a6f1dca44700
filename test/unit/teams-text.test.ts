import { describe, expect, it } from "vitest";
import {
  fromTeamsText,
  parseCardAction,
  toConversation,
  toConversationId,
  toTeamsPrincipal,
} from "../../src/adapters/teams/index.ts";

const bot = "28:bot-app-id";
const mention = (name: string, id = bot) => ({
  type: "mention",
  text: `<at>${name}</at>`,
  mentioned: { id, name },
});

describe("fromTeamsText: the bot's own mention is removed as the entities say", () => {
  it("strips a leading mention of the bot", () => {
    expect(fromTeamsText("<at>shipbot</at> deploy api staging v2", [mention("shipbot")], bot)).toBe(
      "deploy api staging v2",
    );
  });

  it("strips the mention wherever it is, whatever name the client showed", () => {
    expect(fromTeamsText("hey <at>Ship Bot (prod)</at> status api", [mention("Ship Bot (prod)")], bot)).toBe(
      "hey status api",
    );
  });

  it("keeps other people's mentions as their names and ignores a mention that is not the bot", () => {
    const entities = [mention("shipbot"), mention("Ada", "29:ada")];
    expect(fromTeamsText("<at>shipbot</at> lock api staging for <at>Ada</at>", entities, bot)).toBe(
      "lock api staging for Ada",
    );
    // Without an entity for the bot nothing is guessed from the text: the name stays.
    expect(fromTeamsText("<at>shipbot</at> help", [], bot)).toBe("shipbot help");
  });

  it("flattens the light HTML Teams may send", () => {
    expect(
      fromTeamsText("<p><at>shipbot</at>&nbsp;deploy api staging v2&nbsp;</p>", [mention("shipbot")], bot),
    ).toBe("deploy api staging v2");
    expect(fromTeamsText("deploy api staging v2 &amp;&amp; x &lt;y&gt;", undefined, bot)).toBe(
      "deploy api staging v2 && x <y>",
    );
  });

  it("leaves a numeric character reference that names no character as typed instead of failing", () => {
    expect(fromTeamsText("lock api staging see &#99999999; &#x110000; &#x1F680;", undefined, bot)).toBe(
      "lock api staging see &#99999999; &#x110000; 🚀",
    );
  });

  it("plain text in personal chat passes through; empty text means help", () => {
    expect(fromTeamsText("  deploy   api staging v2 ", undefined, bot)).toBe("deploy api staging v2");
    expect(fromTeamsText("<at>shipbot</at>", [mention("shipbot")], bot)).toBe("help");
    expect(fromTeamsText(undefined, undefined, undefined)).toBe("help");
  });
});

describe("conversations and identities", () => {
  it("a channel reply chain becomes channel + thread, and back", () => {
    const id = "19:abc@thread.tacv2;messageid=1481567603816";
    const conversation = toConversation(id);
    expect(conversation).toEqual({
      platform: "teams",
      channel: "19:abc@thread.tacv2",
      thread: "1481567603816",
    });
    expect(toConversationId(conversation)).toBe(id);
    expect(toConversation("a:1personal")).toEqual({ platform: "teams", channel: "a:1personal" });
    expect(toConversationId({ platform: "teams", channel: "a:1personal" })).toBe("a:1personal");
  });

  it("users are their Entra object id, compared case-insensitively", () => {
    expect(toTeamsPrincipal("00000000-0000-0000-0000-0000000000A1")).toBe(
      "teams:00000000-0000-0000-0000-0000000000a1",
    );
  });
});

describe("parseCardAction", () => {
  it("reads verb and value of an Action.Execute", () => {
    expect(
      parseCardAction({
        action: { type: "Action.Execute", verb: "rollback", data: { value: "j123456" } },
        trigger: "manual",
      }),
    ).toEqual({ ok: true, verb: "rollback", value: "j123456" });
  });

  it("refuses anything else as a bad request", () => {
    for (const value of [
      undefined,
      {},
      { action: { type: "Action.Submit", verb: "x", data: { value: "v" } } },
      { action: { type: "Action.Execute", data: { value: "v" } } },
      { action: { type: "Action.Execute", verb: "x", data: {} } },
      { action: { type: "Action.Execute", verb: "x", data: { value: "v".repeat(1001) } } },
    ]) {
      expect(parseCardAction(value).ok).toBe(false);
    }
  });
});
