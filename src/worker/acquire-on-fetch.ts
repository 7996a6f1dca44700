import { moveToActive, moveToFinished } from "bullmq/dist/cjs/scripts/index.js";
import { version as bullmqVersion } from "bullmq/dist/cjs/version.js";
import type { Cluster, Redis } from "ioredis";
import type { Config } from "../core/config.ts";
import { activeFreeze, describeFreeze } from "../core/freeze-windows.ts";
import { jobKinds, jobPriority } from "../core/model.ts";
import { transitionLua } from "../notify/transition-lua.ts";
import type { Keys } from "../queue/keys.ts";
import { type AcquireResult, acquireBodyLua, parseAcquireReply } from "../queue/lease-scripts.ts";

/** What the worker's fetch took for a job it handed out: the acquire's result, for that start of the job. */
export interface FetchedLeases {
  /** The result for this start of the job (its `attemptsStarted`), once; undefined: acquire it yourself. */
  take(jobId: string, attemptsStarted: number): AcquireResult | undefined;
  /** Jobs fetched and not yet taken (a job is taken as its processor starts). */
  readonly size: number;
}

export interface AcquireOnFetchOptions {
  keys: Keys;
  config: Config;
  /** How long a job in a target's line may go without looking at it before it loses its place. */
  staleMs: number;
  /** The card's line while a job runs, by kind. */
  runningText: Record<(typeof jobKinds)[number], string>;
  /**
   * What runs in place of the acquire (default: the acquire). `bench/drain-cpu.ts --stages` passes one
   * that does nothing, to measure what the wrapping costs by itself.
   */
  acquireBody?: string;
}

/** A string as a Lua literal (JSON's escapes for quotes, backslashes and control characters are Lua's too). */
const luaString = (text: string) => JSON.stringify(text);

/** A key function's text with Lua expressions for its arguments: one concatenation, built where it is used. */
function keyExpr(key: (...parts: string[]) => string, ...args: string[]): string {
  const marks = ["\u0001", "\u0002"];
  let text = luaString(key(...marks.slice(0, args.length)));
  for (const [i, arg] of args.entries())
    text = text.replace(luaString(marks[i] ?? "").slice(1, -1), `" .. ${arg} .. "`);
  return text.replaceAll(' .. ""', "").replaceAll('"" .. ', "");
}

/**
 * A BullMQ fetch script (moveToActive, or moveToFinished, which fetches the next job when one finishes)
 * followed, in the same script call, by shipbot's acquire for the job it hands out. BullMQ's text
 * becomes the body of a function whose parameters shadow KEYS and ARGV, so it runs exactly as in a call
 * of its own and its answer goes to BullMQ unchanged; when that answer carries a job, the acquire's
 * reply and the job's start count are appended after BullMQ's four fields (BullMQ reads only those).
 *
 * The acquire gets the arguments the worker would send it, made here from the job's data: the same
 * keys (from the key functions, so there is one layout), the line score, the card text and the
 * scheduled freeze of the job's environment, which the caller appends after BullMQ's arguments (at
 * `extraArg`), computed when the call is sent. Job data that does not look like an operation (it is
 * shipbot's own, so only a bug or a hand-made job) is left to the worker, which validates and
 * acquires on its own path; so is any error in the acquire (`pcall`), so the fetch itself never fails
 * because of it.
 */
export function fetchAndAcquireLua(
  fetchLua: string,
  extraArg: number,
  options: AcquireOnFetchOptions,
): string {
  const { keys, staleMs, runningText, acquireBody = acquireBodyLua } = options;
  const priorities = jobKinds.map((kind) => `[${luaString(kind)}] = ${jobPriority[kind]}`).join(", ");
  const texts = jobKinds.map((kind) => `[${luaString(kind)}] = ${luaString(runningText[kind])}`).join(", ");
  return `${transitionLua}
local function shipbotAcquire(KEYS, ARGV)
${acquireBody}
end
local function bullFetch(KEYS, ARGV)
${fetchLua}
end
local fetched = bullFetch(KEYS, ARGV)
if type(fetched) ~= 'table' or type(fetched[1]) ~= 'table' or type(fetched[2]) ~= 'string' then return fetched end
local jobId, fields = fetched[2], fetched[1]
local raw, ats
for i = 1, #fields, 2 do
  if fields[i] == 'data' then raw = fields[i + 1] elseif fields[i] == 'ats' then ats = fields[i + 1] end
end
local ok, d = pcall(cjson.decode, raw or '')
if not ok or type(d) ~= 'table' then return fetched end
local priorities = { ${priorities} }
local texts = { ${texts} }
local kind, service, env, at, by = d.kind, d.service, d.env, d.requestedAt, d.requestedBy
if type(kind) ~= 'string' or not priorities[kind] or type(service) ~= 'string' or type(env) ~= 'string'
  or type(at) ~= 'number' or at ~= math.floor(at) or at < 0 or type(by) ~= 'table' or type(by.id) ~= 'string' then
  return fetched
end
local scheduledFreeze = ''
local frozen = ARGV[${extraArg}]
if frozen and frozen ~= '' then
  local fok, f = pcall(cjson.decode, frozen)
  if fok and type(f) == 'table' and type(f[env]) == 'string' then scheduledFreeze = f[env] end
end
local requestedAt = string.format('%.0f', at)
local bullJobKey = ${keyExpr(keys.bullJob, "jobId")}
knownJobData[bullJobKey] = { raw, d }
local aok, reply = pcall(shipbotAcquire, {
  ${keyExpr(keys.lease, "service", "env")}, ${keyExpr(keys.line, "service", "env")}, ${keyExpr(keys.fence, "service", "env")},
  ${luaString(keys.lineSeen)}, ${luaString(keys.marks)}, ${keyExpr(keys.job, "jobId")}, bullJobKey, ${luaString(keys.audit)},
  ${luaString(keys.cards)}, ${luaString(keys.locks)}, ${luaString(keys.freezes)}, ${luaString(keys.incidents)},
  ${keyExpr(keys.durations, "service", "env")}
}, {
  jobId, priorities[kind] * 1e13 + at, ${staleMs}, kind, requestedAt, texts[kind], by.id, service, env,
  scheduledFreeze, (tonumber(ats) or 0) <= 1 and '1' or '0'
})
if aok and type(reply) == 'table' then
  fetched[5] = reply
  fetched[6] = ats or '0'
end
return fetched
`;
}

type Call = (args: unknown[]) => Promise<unknown>;

/**
 * Makes the worker's fetch take each job's lease too: BullMQ's moveToActive and moveToFinished, as the
 * worker calls them on `connection`, run with the acquire appended (`fetchAndAcquireLua`), and the
 * acquire's result waits in memory for the job's processor. A job then reaches shipbot's code already
 * holding its target (or parked in its line, or known cancelled), without a round trip of its own.
 *
 * `connection` must be the operations worker's own: BullMQ finds its commands on the connection by
 * name and defines only those not there yet, so the two defined here replace BullMQ's for every
 * worker on it.
 */
export function installAcquireOnFetch(
  connection: Redis | Cluster,
  options: AcquireOnFetchOptions,
): FetchedLeases {
  const fetched = new Map<string, { ats: number; result: AcquireResult }>();
  const freezeEnvs = Object.entries(options.config.environments)
    .filter(([, env]) => (env.freezes?.length ?? 0) > 0)
    .map(([name]) => name);
  // Windows open and close on whole minutes and their text names a minute, so one evaluation serves
  // every fetch of the same minute.
  let freezesOf = { minute: -1, text: "" };
  const scheduledFreezes = (): string => {
    if (freezeEnvs.length === 0) return "";
    const now = Date.now();
    const minute = Math.floor(now / 60_000);
    if (freezesOf.minute === minute) return freezesOf.text;
    const active: Record<string, string> = {};
    for (const env of freezeEnvs) {
      const freeze = activeFreeze(options.config, env, now);
      if (freeze) active[env] = describeFreeze(freeze, env);
    }
    freezesOf = { minute, text: JSON.stringify(active) };
    return freezesOf.text;
  };
  const commands = connection as unknown as Record<string, Call | undefined>;
  for (const script of [moveToActive, moveToFinished]) {
    const fused = `shipbotFetch_${script.name}`;
    connection.defineCommand(fused, {
      numberOfKeys: script.keys,
      lua: fetchAndAcquireLua(script.content, argCount(script.content) + 1, options),
    });
    const call = commands[fused];
    if (typeof call !== "function") throw new Error(`could not define ${fused} on the worker's connection`);
    const bound = call.bind(connection);
    commands[`${script.name}:${bullmqVersion}`] = async (args: unknown[]) => {
      const reply = await bound([...args, scheduledFreezes()]);
      if (
        Array.isArray(reply) &&
        reply.length >= 6 &&
        typeof reply[1] === "string" &&
        Array.isArray(reply[4])
      )
        fetched.set(reply[1], { ats: Number(reply[5]), result: parseAcquireReply(reply[4] as string[]) });
      return reply;
    };
  }
  return {
    take(jobId, attemptsStarted) {
      const found = fetched.get(jobId);
      if (found === undefined) return undefined;
      fetched.delete(jobId);
      return found.ats === attemptsStarted ? found.result : undefined;
    },
    get size() {
      return fetched.size;
    },
  };
}

/** How many ARGV entries a BullMQ script reads (its highest ARGV index), so one more can follow them. */
export function argCount(lua: string): number {
  let highest = 0;
  for (const m of lua.matchAll(/ARGV\[(\d+)\]/g)) highest = Math.max(highest, Number(m[1]));
  return highest;
}
