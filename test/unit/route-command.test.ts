import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { commandRegistry } from "../../commands/index.ts";
import { resolveTarget } from "../../src/core/config.ts";
import { isShipbotError, type ShipbotError } from "../../src/core/errors.ts";
import { routeCommand } from "../../src/core/route-command.ts";
import { chatCommand, demoUser, loadExampleConfig, sreUser, stranger } from "../helpers/example-config.ts";

const config = loadExampleConfig();
const route = (text: string, user = demoUser) =>
  routeCommand(chatCommand(text, user), config, commandRegistry, Date.now());
function refusal(text: string, user = demoUser): ShipbotError {
  try {
    route(text, user);
  } catch (error) {
    if (isShipbotError(error)) return error;
    throw error;
  }
  throw new Error(`expected "${text}" to be refused`);
}

describe("routeCommand", () => {
  it("turns a deploy into one job for the configured target", () => {
    const { result } = route("/deploy api staging v2");
    expect(result).toMatchObject({
      type: "jobs",
      dryRun: false,
      jobs: [
        {
          kind: "deploy",
          version: "v2",
          target: {
            service: "api",
            env: "staging",
            namespace: "staging",
            deployment: "api",
            container: "api",
            image: "ghcr.io/acme/api",
          },
        },
      ],
    });
  });

  it("marks --dry-run", () => {
    expect(route("deploy api staging v2 --dry-run").result).toMatchObject({ type: "jobs", dryRun: true });
  });

  it("knows only configured targets, not names an object inherits (a job naming one fails as unconfigured)", () => {
    expect(resolveTarget(config, "api", "staging")?.deployment).toBe("api");
    expect(resolveTarget(config, "constructor", "staging")).toBeUndefined();
    expect(resolveTarget(config, "api", "constructor")).toBeUndefined();
    expect(refusal("/deploy constructor staging v2").message).toBe(
      "no service `constructor`; known services: api, web",
    );
  });

  it("suggests the service or environment that was probably meant", () => {
    expect(refusal("/deploy apu staging v2").message).toBe("no service `apu`; did you mean `api`?");
    expect(refusal("/deploy api stagign v2").message).toBe(
      "no environment `stagign`; did you mean `staging`?",
    );
    expect(refusal("/deploi api staging v2").message).toBe("no command `deploi`; did you mean `deploy`?");
    expect(refusal("/deploy zzzzzz staging v2").message).toBe(
      "no service `zzzzzz`; known services: api, web",
    );
  });

  it("answers a missing or malformed argument with the usage line", () => {
    const missing = refusal("/deploy api staging");
    expect(missing.code).toBe("usage");
    expect(missing.message).toBe("missing <version>");
    expect(missing.hint).toBe(
      'usage: deploy <service>[,<service>…|*] <env> <version> [--dry-run] [--force] [--break-glass "reason"]',
    );
    expect(refusal("/deploy api staging v2;rm").message).toMatch(/is not a valid version/);
    expect(refusal("/deploy API staging v2").message).toMatch(/is not a valid service/);
    expect(refusal("/deploy api staging v2 extra").message).toBe("too many arguments: `extra`");
    expect(refusal("/deploy api staging v2 --forse").message).toBe(
      "unknown option `--forse`; did you mean `--force`?",
    );
    expect(refusal("/deploy api staging v2 --dry-rn").message).toBe(
      "unknown option `--dry-rn`; did you mean `--dry-run`?",
    );
  });

  it("answers a list of services typed with spaces after its commas with the list written as it should be", () => {
    const spaced = refusal("/deploy api, web staging v2");
    expect(spaced.code).toBe("usage");
    expect(spaced.message).toBe("write the list of services without spaces: `api,web`");
    expect(spaced.hint).toMatch(/^usage: deploy /);
    expect(refusal("/deploy api ,web staging v2").message).toBe(
      "write the list of services without spaces: `api,web`",
    );
    expect(refusal("/deploy api , web staging v2 --dry-run").message).toBe(
      "write the list of services without spaces: `api,web`",
    );
    // Three names make more words than rollback takes: still the list, not "too many arguments".
    expect(refusal("/rollback api, web, worker staging").message).toBe(
      "write the list of services without spaces: `api,web,worker`",
    );
    // A comma before the environment is left dangling: which services were meant is not guessed.
    expect(refusal("/deploy api, staging v2").message).toBe(
      "`api,` ends with a comma: drop it, or name the next service right after it, without a space",
    );
    // Written without spaces it is the fan-out it was meant to be.
    expect(route("/deploy api,web staging v2").result).toMatchObject({
      type: "jobs",
      jobs: [{ target: { service: "api" } }, { target: { service: "web" } }],
    });
  });

  it("checks replica counts: whole numbers within the target's bounds", () => {
    expect(route("scale api staging 4").result).toMatchObject({
      type: "jobs",
      jobs: [{ kind: "scale", replicas: 4 }],
    });
    expect(refusal("scale api staging 4.5").message).toMatch(/must be a whole number/);
    expect(refusal("scale api staging -1").message).toMatch(/must be a whole number/);
    expect(refusal("scale api staging 11").message).toBe(
      "api in staging may run between 1 and 10 replicas, not 11",
    );
    expect(refusal("scale api staging 0").message).toBe(
      "api in staging may run between 1 and 10 replicas, not 0",
    );
  });

  it("takes an optional revision for rollback", () => {
    expect(route("rollback api staging").result).toMatchObject({
      type: "jobs",
      jobs: [{ kind: "rollback" }],
    });
    expect(route("rollback api staging 3").result).toMatchObject({
      jobs: [{ kind: "rollback", revision: 3 }],
    });
    expect(refusal("rollback api staging three").message).toMatch(/not a valid revision/);
  });

  it("names the role a user lacks", () => {
    const denied = refusal("/deploy api production v2");
    expect(denied.code).toBe("forbidden");
    expect(denied.message).toBe(
      "not allowed: deploy api in production needs role `sre`; you hold `deployer`, `viewer`",
    );
    expect(refusal("/status api", stranger).message).toBe(
      "not allowed: read api needs role `deployer` or `sre` or `viewer`; you hold no role",
    );
    expect(route("/deploy api production v2", sreUser).result).toMatchObject({ type: "jobs" });
  });

  it("grants by group membership, by immutable id", () => {
    const member = { id: "slack:U0SOMEONE1", name: "someone", groups: ["slack:S0SRE"] };
    expect(route("/deploy web production v9", member).result).toMatchObject({ type: "jobs" });
    const impostor = { id: "slack:U0SOMEONE2", name: "sre-1", groups: [] };
    expect(refusal("/deploy web production v9", impostor).code).toBe("forbidden");
  });

  it("lets anyone ask for help and whoami, and lists every command", () => {
    const help = route("help", stranger).result;
    expect(help.type).toBe("reply");
    if (help.type !== "reply") return;
    for (const name of commandRegistry.keys()) expect(help.card.lines.join("\n")).toContain(`\`${name}`);
    const who = route("whoami").result;
    expect(who.type === "reply" && who.card.lines.join("\n")).toMatch(
      /Role `deployer`: read, deploy, rollback, scale, cancel, lock on all services in staging/,
    );
  });

  it("validates job ids for cancel", () => {
    expect(route("cancel j0a1b2c3d4e5f").result).toEqual({ type: "cancel", jobId: "j0a1b2c3d4e5f" });
    expect(refusal("cancel ../../etc").message).toMatch(/not a valid job/);
  });

  it("answers a value option typed without its value, and a day count out of range, in words", () => {
    expect(refusal("dora api --days").message).toBe("`--days` needs a value: `--days=…`");
    // `--days 7` leaves 7 as a word: the option still has no value.
    const spaced = refusal("dora api staging --days 7");
    expect(spaced.message).toBe("`--days` needs a value: `--days=…`");
    expect(spaced.hint).toBe("usage: dora <service> [env] [--days=N]");
    expect(refusal("dora api --days=1000").message).toBe("`1000` is not a valid days: must be at most 365");
    expect(route("dora api --days=365").result).toMatchObject({ query: { kind: "dora", days: 365 } });
  });

  it("reads a freeze's end as typed, and refuses one it cannot read rather than freezing with no end", () => {
    const now = Date.parse("2026-11-20T10:00:00Z");
    const freeze = (text: string) => {
      try {
        const { result } = routeCommand(chatCommand(text, sreUser), config, commandRegistry, now);
        return result.type === "control" ? result.control : result;
      } catch (error) {
        if (isShipbotError(error)) return error.message;
        throw error;
      }
    };
    const notATime = (word: string) =>
      `\`${word}\` is not a time: use 2h, 30m, 1d or an ISO time with a zone (2026-11-24T08:00:00Z)`;
    expect(freeze("freeze production 2H release train")).toEqual({
      kind: "freeze",
      env: "production",
      until: now + 2 * 3_600_000,
      reason: "release train",
    });
    expect(freeze("freeze production until 1d release train")).toEqual({
      kind: "freeze",
      env: "production",
      until: now + 86_400_000,
      reason: "release train",
    });
    // Each of these was the freeze's reason, and the freeze never ended.
    expect(freeze("freeze production 2026-11-24 release")).toBe(notATime("2026-11-24"));
    expect(freeze("freeze production 1w")).toBe(notATime("1w"));
    expect(freeze("freeze production 90min")).toBe(notATime("90min"));
    expect(freeze("freeze production 18:00 release")).toBe(notATime("18:00"));
    // A day the month does not have is not the first of the next month.
    expect(freeze("freeze production 2026-11-31T08:00:00Z")).toBe(notATime("2026-11-31T08:00:00Z"));
    expect(freeze("freeze production 2026-11-30T08:00:00Z")).toMatchObject({
      until: Date.parse("2026-11-30T08:00:00Z"),
    });
    // Words that are not meant as a time stay the reason.
    expect(freeze("freeze production until the release is out")).toEqual({
      kind: "freeze",
      env: "production",
      reason: "until the release is out",
    });
    expect(freeze("freeze production 3 teams release today")).toMatchObject({
      reason: "3 teams release today",
    });
  });

  it("turns status and queue into queries", () => {
    expect(route("status api staging").result).toEqual({
      type: "query",
      query: { kind: "status", service: "api", env: "staging" },
    });
    expect(route("status api").result).toEqual({ type: "query", query: { kind: "status", service: "api" } });
    expect(route("queue").result).toEqual({ type: "query", query: { kind: "queue" } });
  });

  it("never crashes and never makes a job from text that is not a valid deploy", () => {
    const hostile = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.constantFrom(
        "$(reboot)",
        "`id`",
        "../../etc/passwd",
        "app=api,env!=prod",
        "аpi",
        "api\u200b",
        "x".repeat(2000),
      ),
    );
    fc.assert(
      fc.property(hostile, hostile, hostile, (a, b, c) => {
        try {
          const { result } = route(`/deploy ${a} ${b} ${c}`);
          if (result.type === "jobs") {
            for (const job of result.jobs) {
              expect(["api", "web"]).toContain(job.target.service);
              expect(job.version).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/);
            }
          }
        } catch (error) {
          expect(isShipbotError(error)).toBe(true);
        }
      }),
      { numRuns: 1500 },
    );
  });
});
