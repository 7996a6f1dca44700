import type { Redis } from "ioredis";
import { auditMaxLength } from "../audit/audit-log.ts";
import { toBreakGlassCardId } from "../core/break-glass.ts";
import { stateTtlMs } from "../notify/status-store.ts";
import { durationsKept, interimCardDelayMs, transitionLua } from "../notify/transition-lua.ts";
import type { Keys } from "./keys.ts";

/**
 * One operation per service×environment at a time, in one round trip per job.
 *
 * The lease key names the job that holds the target and its fencing token. It needs no heartbeat: the
 * holder counts only while BullMQ's lock on its job exists, and BullMQ already renews that lock while
 * a live worker runs the job. So a finished or dead holder frees the target by itself; the deriver
 * also clears the lease when it sees the job finish, and wakes the next job in line.
 *
 * Jobs that find the target busy wait in the target's line, a sorted set scored by priority then
 * request time; members are "kind|requestedAt|jobId" so supersede rules need no job data. Jobs held by
 * a lock, freeze or incident wait outside it, remembered with their place (see `heldKey`). The same
 * script writes the job's new state (running, or waiting with its position), its audit entry and its
 * card signal.
 */
export const acquireBodyLua = `
local lease, line, fenceKey, seen, marks, state, bullJob, audit, cards = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local locks, freezes, incidents, durations = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local jobId, score, staleMs, kind, ts = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local runningText, requester, service, env, scheduledFreeze = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local fresh = ARGV[11] == '1'
-- Derived here rather than sent with every call (each argument costs the worker to encode).
local member = kind .. '|' .. ARGV[5] .. '|' .. jobId
local target = service .. '/' .. env
local auditMax, ttl = ${auditMaxLength}, ${stateTtlMs}
local bullPrefix = string.sub(bullJob, 1, #bullJob - #jobId)
local breakGlassCard = '${toBreakGlassCardId("ran", "")}' .. jobId

-- Hash: "<service>:<env>" -> "<requestedAt>|<job id>" of the target's newest deploy blocked by a lock or
-- freeze. Blocked jobs wait outside the line, so this is how supersede still sees them: without it the
-- blocked deploys look again in any order once the guard lifts, and an older one could run after a newer
-- one and leave its version live. Beside the marks (same hash tag), derived like the batch keys.
local blockedDeploys = string.sub(marks, 1, -6) .. 'blocked-deploys'
local targetField = service .. ':' .. env
-- Hash: job id -> "<line score>|<last look>|<kind>|<requester>" of the target's jobs held by a lock,
-- freeze or incident. They wait outside the line so that, while held, they hold up nobody; this keeps
-- their place in the line's order for when the guard lifts (see heldAhead). One per target, so jobs held
-- elsewhere cost this target nothing.
local held = string.sub(marks, 1, -6) .. 'held:' .. targetField

-- Marks, locks, freezes, incidents, blocked deploys and held jobs are rare: an empty hash does not exist,
-- so one EXISTS tells whether any is held at all; only then are they read one by one.
local flagged = redis.call('EXISTS', marks, locks, freezes, incidents, blockedDeploys, held) > 0
local mark = flagged and redis.call('HGET', marks, jobId)
if mark then
  redis.call('ZREM', line, member)
  redis.call('HDEL', seen, jobId)
  redis.call('HDEL', marks, jobId)
  redis.call('HDEL', held, jobId)
  -- Ends here: a blocked deploy it was remembered as must not outlive it.
  if kind == 'deploy' and redis.call('HGET', blockedDeploys, targetField) == ARGV[5] .. '|' .. jobId then
    redis.call('HDEL', blockedDeploys, targetField)
  end
  return {'marked', mark}
end

local superseded = {}
-- Supersede among blocked deploys, called for every deploy that gets past its marks while one is
-- remembered (and for every blocked deploy): an older blocked deploy is superseded by this one; a blocked
-- deploy older than the remembered one is itself superseded (answer: the newer one's id). A deploy that
-- is not blocked (it runs or joins the line) leaves a newer blocked one alone: it runs first anyway.
local function settleBlocked(blockedNow)
  local other = redis.call('HGET', blockedDeploys, targetField)
  local ots, oid = false, false
  if other then ots, oid = string.match(other, '^([^|]+)|(.+)$') end
  if oid and oid ~= jobId and tonumber(ots) > ts then
    return blockedNow and oid or false
  end
  if oid and oid ~= jobId then
    redis.call('HSET', marks, oid, 'superseded|' .. jobId)
    redis.call('HDEL', held, oid)
    table.insert(superseded, oid)
  end
  if blockedNow then
    redis.call('HSET', blockedDeploys, targetField, ARGV[5] .. '|' .. jobId)
  elseif oid then
    redis.call('HDEL', blockedDeploys, targetField)
  end
  return false
end

local now = nowMs()

-- A deploy asked for with --break-glass passes a freeze once approved under the break-glass policy: the
-- payload the approvers saw (kept in the state hash by the approval request) carries the flag, and only
-- an approval decision sets approvedBy. Read only while a freeze is in force.
local function approvedBreakGlass()
  if kind ~= 'deploy' or not redis.call('HGET', state, 'approvedBy') then return false end
  local ok, d = pcall(cjson.decode, redis.call('HGET', state, 'data') or '')
  return ok and type(d) == 'table' and type(d.breakGlass) == 'table'
end

-- Guards checked where the job runs: a lock held by someone else, or a freeze (rollbacks pass freezes).
local guarded = flagged
local blocked = false
local passedFreeze = false
-- Who holds the lock this job passes (its own requester), to tell which held jobs it still holds.
local lockBy = false
-- Both locks that cover the target, the service's and every service's, in one read: the job waits if
-- either is someone else's. Reading the second only when the first is absent let one person's lock on
-- the service hide another's lock on the whole environment.
local covering = guarded and redis.call('HMGET', locks, targetField, '*:' .. env)
for i = 1, covering and 2 or 0 do
  local ok, l = false, nil
  if covering[i] then ok, l = pcall(cjson.decode, covering[i]) end
  if ok and type(l) == 'table' and l.byId ~= requester then
    blocked = target .. ' is locked by ' .. tostring(l.by) .. (l.reason and (': ' .. tostring(l.reason)) or '')
    break
  elseif ok and type(l) == 'table' then
    lockBy = requester
  end
end
if not blocked and kind ~= 'rollback' then
  local freeze = false
  local frozen = guarded and redis.call('HGET', freezes, env)
  if frozen then
    local ok, f = pcall(cjson.decode, frozen)
    if ok and type(f) == 'table' and (f['until'] == nil or tonumber(f['until']) > now) then
      freeze = env .. ' is frozen by ' .. tostring(f.by) .. (f.reason and (': ' .. tostring(f.reason)) or '')
    elseif ok then
      redis.call('HDEL', freezes, env)
    end
  end
  if not freeze and scheduledFreeze ~= '' then freeze = scheduledFreeze end
  if freeze then
    if approvedBreakGlass() then passedFreeze = freeze else blocked = freeze end
  end
  if not blocked and guarded then
    -- A firing severe alert makes its target rollback-only until it resolves (set by src/alerts).
    local incident = redis.call('HGET', incidents, service .. ':' .. env)
    if incident then
      local ok, i = pcall(cjson.decode, incident)
      local what = (ok and type(i) == 'table') and (tostring(i.alert) .. ' since ' .. tostring(i.sinceText)) or 'alert'
      blocked = target .. ' is in incident mode (' .. what .. '): only rollbacks run'
    end
  end
end
if blocked then
  -- Blocked jobs stay out of the line so they hold up nobody (the lock holder may still deploy);
  -- they look again every recheck, and each look renews their place among the held jobs.
  redis.call('ZREM', line, member)
  redis.call('HDEL', seen, jobId)
  local newer = kind == 'deploy' and settleBlocked(true)
  if newer then
    redis.call('HDEL', held, jobId)
    return {'marked', 'superseded|' .. newer}
  end
  redis.call('HSET', held, jobId, string.format('%.0f|%.0f|', score, now) .. kind .. '|' .. requester)
  transition(state, bullJob, audit, cards, jobId, 'waiting', 'Waiting · ' .. blocked, now, 0, auditMax, ttl, {}, { 'position' })
  return {'blocked', blocked, '0'}
end

if kind == 'deploy' and flagged then settleBlocked(false) end

-- A held job that the line's order puts ahead of this one goes first once its guard has lifted: this job
-- waits for it as for a line's head, so after an unlock a held rollback still runs before a held deploy,
-- whichever looks again first. A held job this job's guards would still hold (someone else's job under
-- the lock this job's requester holds; anything but a rollback under the freeze a break-glass deploy
-- passed) holds up nobody; one that stopped looking loses its place. This job is no longer held itself.
local heldAhead = false
if flagged then
  local entries = redis.call('HGETALL', held)
  local best = score
  for i = 1, #entries, 2 do
    local hid = entries[i]
    local hscore, hseen, hkind, hby = string.match(entries[i + 1], '^([^|]+)|([^|]+)|([^|]+)|(.*)$')
    if hid == jobId or not hscore or now - tonumber(hseen) > staleMs then
      redis.call('HDEL', held, hid)
    elseif tonumber(hscore) < best and not (lockBy and hby ~= lockBy) and not (passedFreeze and hkind ~= 'rollback') then
      best = tonumber(hscore)
      heldAhead = hid
    end
  end
end

local holder = redis.call('GET', lease)
local holderId = holder and string.match(holder, '^([^|]+)|') or false
local busy = false
local running = false
local lineEmpty = false
if holderId and holderId ~= jobId then
  if redis.call('EXISTS', bullPrefix .. holderId .. ':lock') == 1 then
    busy = true
    running = holderId
  else
    redis.call('DEL', lease)
    holderId = false
  end
end

if not busy then
  -- Free: still, whoever is ahead in the line goes first. Heads that stopped checking in are dropped.
  while true do
    local head = redis.call('ZRANGE', line, 0, 0, 'WITHSCORES')
    if #head == 0 then lineEmpty = true; break end
    local headId = string.match(head[1], '|([^|]+)$')
    if headId == jobId then break end
    local last = tonumber(redis.call('HGET', seen, headId) or '0')
    if now - last > staleMs then
      redis.call('ZREM', line, head[1])
      redis.call('HDEL', seen, headId)
    else
      if tonumber(head[2]) < score then busy = true; holderId = headId end
      break
    end
  end
  if not busy and heldAhead then busy = true; holderId = heldAhead end
end

if not busy then
  local fence = redis.call('INCR', fenceKey)
  redis.call('SET', lease, jobId .. '|' .. fence)
  -- A job on its first start has never joined the line (nor is it in an empty one).
  if not fresh then
    if not lineEmpty then redis.call('ZREM', line, member) end
    redis.call('HDEL', seen, jobId)
  end
  local sets = { 'startedAt', tostring(now), 'fence', tostring(fence) }
  if passedFreeze then
    -- Break-glass: the ledger says which freeze it passed; the audit channel gets its post, after the
    -- approval's if the deriver has not written that yet.
    table.insert(sets, 'breakGlassFreeze'); table.insert(sets, passedFreeze)
    breakGlassApproved(state, audit, cards, jobId, now, auditMax)
    auditAppend(audit, auditMax, { 'type', 'breakglass.ran', 'at', tostring(now), 'job', jobId, 'kind', kind,
      'service', service, 'env', env, 'actor', requester, 'freeze', passedFreeze })
    redis.call('ZADD', cards, now, breakGlassCard)
  end
  -- The fence of this job's first attempt: a retry must not overwrite what others did since. Read and
  -- set with the transition's own read and write of the state hash.
  local firstFence
  transition(state, bullJob, audit, cards, jobId, 'running', runningText, now, ${interimCardDelayMs}, auditMax, ttl,
    function(h)
      firstFence = h.firstFence or fence
      if not h.firstFence then table.insert(sets, 'firstFence'); table.insert(sets, tostring(fence)) end
      return sets
    end, { 'position' })
  if not firstFence then
    -- The transition changed nothing (the job shows this state already, as after a worker restart).
    firstFence = fence
    if redis.call('HSETNX', state, 'firstFence', fence) == 0 then firstFence = redis.call('HGET', state, 'firstFence') end
  end
  return {'acquired', tostring(fence), tostring(firstFence)}
end

if kind == 'deploy' then
  local members = redis.call('ZRANGE', line, 0, -1)
  for _, m in ipairs(members) do
    local mk, mts, mid = string.match(m, '^([^|]+)|([^|]+)|([^|]+)$')
    if mk == 'deploy' and mid ~= jobId then
      if tonumber(mts) > ts then
        redis.call('ZREM', line, member)
        redis.call('HDEL', seen, jobId)
        return {'marked', 'superseded|' .. mid}
      end
      redis.call('ZREM', line, m)
      redis.call('HSET', marks, mid, 'superseded|' .. jobId)
      table.insert(superseded, mid)
    end
  end
end
redis.call('ZADD', line, score, member)
redis.call('HSET', seen, jobId, now)
local position = redis.call('ZRANK', line, member) + 1
local behind = holderId and (' (behind ' .. holderId .. ')') or ''
-- Expected start from the target's recent run times (median): what the running job has left, plus one
-- run per job ahead in the line. Shown as a clock time, so the card changes only when the estimate does.
local eta = ''
local recent = redis.call('LRANGE', durations, 0, ${durationsKept - 1})
if #recent > 0 then
  local values = {}
  for _, d in ipairs(recent) do values[#values + 1] = tonumber(string.match(d, '(%d+)$')) or 0 end
  table.sort(values)
  local typical = values[math.floor((#values + 1) / 2)]
  local startAt = now + (position - 1) * typical
  if running then
    local started = tonumber(redis.call('HGET', string.gsub(state, '[^:]+$', running), 'startedAt') or '')
    startAt = startAt + math.max(0, (started or now) + typical - now)
  end
  local minute = math.ceil(startAt / 60000)
  eta = string.format(' · expected to start around %02d:%02d UTC', math.floor(minute / 60) % 24, minute % 60)
end
transition(state, bullJob, audit, cards, jobId, 'waiting', 'Waiting · position ' .. position .. ' for ' .. target .. behind .. eta,
  now, 0, auditMax, ttl, { 'position', tostring(position) }, {})
local reply = {'busy', holderId or '', tostring(position)}
for _, id in ipairs(superseded) do table.insert(reply, id) end
return reply
`;

/** The acquire as a script of its own (the worker runs the same body inside its fetch: src/worker/acquire-on-fetch.ts). */
const acquireScript = `${transitionLua}${acquireBodyLua}`;

/**
 * Cancels a job that has not started, atomically with respect to acquire: either the job already runs
 * (and is left alone) or it is marked, so a worker that picks it up drops it, and its card says so.
 */
const cancelScript = `${transitionLua}
local marks, state, bullJob, audit, cards, line = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local jobId, by, member, auditMax, ttl, targetField = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local phase = redis.call('HGET', state, 'phase')
if phase == 'running' or phase == 'progress' then return 'running' end
if phase and terminal[phase] then return phase end
redis.call('HSET', marks, jobId, 'cancelled|' .. by)
redis.call('ZREM', line, member)
-- A cancelled deploy blocked by a lock or freeze is no longer the one newer deploys supersede (see acquire).
local blockedDeploys = string.sub(marks, 1, -6) .. 'blocked-deploys'
if redis.call('HGET', blockedDeploys, targetField) == string.match(member, '|(.+)$') then
  redis.call('HDEL', blockedDeploys, targetField)
end
-- Nor does it keep a place that others would wait for once the guard lifts.
redis.call('HDEL', string.sub(marks, 1, -6) .. 'held:' .. targetField, jobId)
local now = nowMs()
transition(state, bullJob, audit, cards, jobId, 'cancelled', 'Cancelled by ' .. by, now, 0, auditMax, ttl,
  { 'finishedAt', tostring(now) }, { 'position' })
return 'cancelled'
`;

export type AcquireResult =
  | { status: "acquired"; fence: number; firstFence: number }
  | { status: "blocked"; reason: string; position: number }
  | { status: "busy"; holder: string; position: number; superseded: string[] }
  | { status: "cancelled"; by: string }
  | { status: "superseded"; by: string };

export interface LeaseRequest {
  jobId: string;
  service: string;
  env: string;
  kind: string;
  requestedAt: number;
  priority: number;
}

export interface Leases {
  /** Takes the target (and marks the job running) or joins its line (and marks the job waiting). */
  acquire(
    request: LeaseRequest,
    options: {
      staleMs: number;
      runningText: string;
      requester: string;
      scheduledFreeze?: string;
      /** The job's first start: it cannot be in the target's line yet, so there is nothing to clear. */
      fresh?: boolean;
    },
  ): Promise<AcquireResult>;
  /** "cancelled", or why not: "running" or the final phase the job already reached. */
  cancel(request: LeaseRequest, by: string): Promise<string>;
  mark(jobId: string, mark: string): Promise<void>;
  clearMark(jobId: string): Promise<void>;
}

type ScriptRedis = Redis & {
  shipbotAcquire(...args: Array<string | number>): Promise<string[]>;
  shipbotCancel(...args: Array<string | number>): Promise<string>;
};

/**
 * Hash of a target's jobs held by a lock, freeze or incident: job id → "<line score>|<last look>|<kind>|
 * <requester>". Derived from the marks key, as the scripts derive it (same `{ops}` hash tag).
 */
export function heldKey(keys: Keys, service: string, env: string): string {
  return `${keys.marks.slice(0, -"marks".length)}held:${service}:${env}`;
}

/** The held job that comes first in the line's order, from `heldKey`'s entries. */
export function firstHeld(entries: Record<string, string>): string | undefined {
  let first: { jobId: string; score: number } | undefined;
  for (const [jobId, value] of Object.entries(entries)) {
    const score = Number(value.split("|", 1)[0]);
    if (first === undefined || score < first.score) first = { jobId, score };
  }
  return first?.jobId;
}

export function lineMember(request: LeaseRequest): string {
  return `${request.kind}|${request.requestedAt}|${request.jobId}`;
}

/** Priority first (rollback before deploy before scale), then arrival. */
export function lineScore(request: LeaseRequest): number {
  return request.priority * 1e13 + request.requestedAt;
}

/** The acquire script's answer as a result. */
export function parseAcquireReply(reply: string[]): AcquireResult {
  const [status, a = "", b = "0", ...rest] = reply;
  if (status === "acquired") return { status, fence: Number(a), firstFence: Number(b) };
  if (status === "blocked") return { status, reason: a, position: Number(b) };
  if (status === "busy") return { status, holder: a, position: Number(b), superseded: rest };
  const [what, by = ""] = a.split("|");
  return what === "cancelled" ? { status: "cancelled", by } : { status: "superseded", by };
}

export function createLeases(redis: Redis, keys: Keys): Leases {
  const r = redis as ScriptRedis;
  if (typeof r.shipbotAcquire !== "function") {
    redis.defineCommand("shipbotAcquire", { numberOfKeys: 13, lua: acquireScript });
    redis.defineCommand("shipbotCancel", { numberOfKeys: 6, lua: cancelScript });
  }
  return {
    async acquire(request, { staleMs, runningText, requester, scheduledFreeze, fresh }) {
      const reply = await r.shipbotAcquire(
        keys.lease(request.service, request.env),
        keys.line(request.service, request.env),
        keys.fence(request.service, request.env),
        keys.lineSeen,
        keys.marks,
        keys.job(request.jobId),
        keys.bullJob(request.jobId),
        keys.audit,
        keys.cards,
        keys.locks,
        keys.freezes,
        keys.incidents,
        keys.durations(request.service, request.env),
        request.jobId,
        lineScore(request),
        staleMs,
        request.kind,
        request.requestedAt,
        runningText,
        requester,
        request.service,
        request.env,
        scheduledFreeze ?? "",
        fresh ? "1" : "0",
      );
      return parseAcquireReply(reply);
    },
    cancel(request, by) {
      return r.shipbotCancel(
        keys.marks,
        keys.job(request.jobId),
        keys.bullJob(request.jobId),
        keys.audit,
        keys.cards,
        keys.line(request.service, request.env),
        request.jobId,
        by,
        lineMember(request),
        auditMaxLength,
        stateTtlMs,
        `${request.service}:${request.env}`,
      );
    },
    async mark(jobId, mark) {
      await redis.hset(keys.marks, jobId, mark);
    },
    async clearMark(jobId) {
      await redis.hdel(keys.marks, jobId);
    },
  };
}
