import { auditAppendLua } from "../audit/audit-lua.ts";
import { toBreakGlassCardId } from "../core/break-glass.ts";

/** Failures a batch keeps for its card (the counters count them all). */
export const batchFailuresKept = 20;

/** Run times kept per target for queue ETAs (the deriver's pushes, the acquire's and the ledger's reads). */
export const durationsKept = 20;

/** A batch's card waits at least this long, so a wave of jobs finishing becomes one edit. */
export const batchCardDelayMs = 250;

/**
 * The one Lua function behind every job transition, shared by the scripts that change a job's state
 * (the worker's acquire, progress, and the deriver's queued/finished). It merges the change into the
 * job's state hash, refuses to leave a final state, appends the transition to the audit stream and
 * marks the job's card for rendering: all inside the caller's single round trip.
 *
 * The state hash holds plain fields (no JSON to decode on every change). `data` is the job's payload,
 * copied as a string from the BullMQ job hash the first time; `kind`, `service`, `env`, `actor` and
 * `trace` are decoded from it once, for audit entries.
 */
export const transitionLua = `${auditAppendLua}
local terminal = { succeeded = true, failed = true, cancelled = true, superseded = true }
-- A job's payload its script read already (the worker's fetch has the job hash), by BullMQ job key:
-- { raw, decoded }, so a first transition neither reads nor decodes it again.
local knownJobData = {}
local batchBuckets = { ['pending-approval'] = 'waiting', approved = 'waiting', queued = 'waiting', waiting = 'waiting',
  running = 'running', progress = 'running', succeeded = 'succeeded', failed = 'failed', cancelled = 'cancelled', superseded = 'cancelled' }

-- A job of a fan-out moves its batch's counters and marks the batch's one card instead of its own: O(1).
-- The batch hash shares the cards key's prefix ('<prefix>:{ops}:'); false when it is gone (expired).
local function batchChange(cards, batch, cur, phase, text, service, now, cardDelay, ttl)
  local key = string.sub(cards, 1, -6) .. 'batch:' .. batch
  if redis.call('EXISTS', key) == 0 then return false end
  local from, to = cur and batchBuckets[cur], batchBuckets[phase]
  if from == to then return true end
  if from then redis.call('HINCRBY', key, from, -1) end
  redis.call('HINCRBY', key, to, 1)
  redis.call('HINCRBY', key, 'seq', 1)
  redis.call('PEXPIRE', key, ttl)
  if to == 'failed' then
    local failures = key .. ':failed'
    if redis.call('LLEN', failures) < ${batchFailuresKept} then
      redis.call('RPUSH', failures, service .. '|' .. text)
      redis.call('PEXPIRE', failures, ttl)
    end
  end
  redis.call('ZADD', cards, 'LT', now + math.max(cardDelay, ${batchCardDelayMs}), batch)
  return true
end

local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- sets: flat list of field, value to set, or a function given the fields read (data, firstFence) that
-- returns it; dels: fields to remove; extra (optional): more audit fields.
-- One HMGET reads everything the checks and the audit entry need; one HSET writes the change.
local function transition(state, bullJob, audit, cards, jobId, phase, text, now, cardDelay, auditMax, ttl, sets, dels, extra)
  local h = redis.call('HMGET', state, 'phase', 'text', 'kind', 'service', 'env', 'actor', 'trace', 'by', 'batch', 'position', 'seq', 'data', 'firstFence')
  local cur = h[1]
  if cur and terminal[cur] then return 0 end
  if phase == 'queued' and cur and cur ~= 'approved' then return 0 end
  if cur == phase and h[2] == text then return 0 end
  local meta = { h[3], h[4], h[5], h[6], h[7], h[8], h[9] }
  -- seq counts the job's changes; read and written here, inside the script, it needs no HINCRBY.
  local seq = (tonumber(h[11]) or 0) + 1
  local fields = { 'seq', seq, 'phase', phase, 'text', text, 'updatedAt', now }
  if not meta[1] then
    local raw = h[12]
    local known = knownJobData[bullJob]
    if not raw then
      raw = known and known[1] or redis.call('HGET', bullJob, 'data')
      if raw then fields[#fields + 1] = 'data'; fields[#fields + 1] = raw end
    end
    if raw then
      local ok, d = true, known and known[1] == raw and known[2]
      if not d then ok, d = pcall(cjson.decode, raw) end
      if ok and type(d) == 'table' then
        local by = type(d.requestedBy) == 'table' and d.requestedBy or {}
        meta = { tostring(d.kind or ''), tostring(d.service or ''), tostring(d.env or ''), tostring(by.id or ''), tostring(d.traceId or ''), tostring(by.name or '') }
        for i, f in ipairs({ 'kind', 'service', 'env', 'actor', 'trace', 'by' }) do
          fields[#fields + 1] = f; fields[#fields + 1] = meta[i]
        end
        if type(d.batch) == 'string' then
          meta[7] = d.batch
          fields[#fields + 1] = 'batch'; fields[#fields + 1] = d.batch
        end
      end
    end
  end
  if type(sets) == 'function' then sets = sets({ data = h[12], firstFence = h[13] }) end
  for _, v in ipairs(sets) do fields[#fields + 1] = v end
  redis.call('HSET', state, unpack(fields))
  -- Nothing to remove when the only field to clear is a position the job never had.
  if #dels > 0 and not (#dels == 1 and dels[1] == 'position' and not h[10]) then redis.call('HDEL', state, unpack(dels)) end
  redis.call('PEXPIRE', state, ttl)
  local entry = { 'type', 'job.' .. phase, 'at', tostring(now), 'job', jobId,
    'kind', meta[1] or '', 'service', meta[2] or '', 'env', meta[3] or '', 'actor', meta[4] or '', 'trace', meta[5] or '',
    'text', text }
  if extra then for _, v in ipairs(extra) do entry[#entry + 1] = v end end
  auditAppend(audit, auditMax, entry)
  -- LT: an earlier render time wins, so a final state is never pushed back behind coalesced progress.
  if not (meta[7] and batchChange(cards, meta[7], cur, phase, text, meta[2] or '', now, cardDelay, ttl)) then
    redis.call('ZADD', cards, 'LT', now + cardDelay, jobId)
  end
  return seq, meta
end

-- An approved break-glass request, queued: its ledger entry and its post to the audit channel, once,
-- by whichever comes first, the deriver seeing the job queued or the worker starting it (so the entry
-- always comes before the one saying the deploy ran). Only an approval decision sets approvedBy.
local function breakGlassApproved(state, audit, cards, jobId, now, auditMax)
  local h = redis.call('HMGET', state, 'approvedBy', 'data', 'breakGlassApprovedAt')
  if not h[1] or h[3] or not string.find(h[2] or '', '"breakGlass"', 1, true) then return end
  local ok, d = pcall(cjson.decode, h[2])
  if not (ok and type(d) == 'table' and type(d.breakGlass) == 'table') then return end
  local by = type(d.requestedBy) == 'table' and d.requestedBy or {}
  redis.call('HSET', state, 'breakGlassApprovedAt', tostring(now))
  auditAppend(audit, auditMax, { 'type', 'breakglass.approved', 'at', tostring(now), 'job', jobId,
    'kind', tostring(d.kind or ''), 'service', tostring(d.service or ''), 'env', tostring(d.env or ''),
    'actor', tostring(by.id or ''), 'approvedBy', h[1], 'reason', tostring(d.breakGlass.reason) })
  redis.call('ZADD', cards, now, '${toBreakGlassCardId("approved", "")}' .. jobId)
end

-- LPUSH onto a list whose readers read only its first keep entries; trimmed back to keep once it is 10
-- longer, so most pushes cost one command, not two.
local function pushCapped(key, value, keep)
  if redis.call('LPUSH', key, value) > keep + 10 then redis.call('LTRIM', key, 0, keep - 1) end
end

-- A finished operation goes to its target's history (what the status and history commands list).
local function recordHistory(historyPrefix, state, meta, jobId, phase, image, now)
  if not meta[2] or meta[2] == '' then return end
  local key = historyPrefix .. meta[2] .. ':' .. meta[3]
  -- A missing hash field reads as false: leave it out rather than store false.
  local entry = { jobId = jobId, kind = meta[1], phase = phase, image = image or nil, by = meta[6] or '', at = now }
  if not image and meta[1] == 'deploy' then
    -- A deploy that failed before it reported an image: the history names the version asked for.
    local ok, d = pcall(cjson.decode, redis.call('HGET', state, 'data') or '')
    if ok and type(d) == 'table' and type(d.version) == 'string' then entry.version = d.version end
  end
  pushCapped(key, cjson.encode(entry), 50)
end
`;

/** How long progress waits before its card is rendered, so ticks coalesce. */
export const progressCardDelayMs = 300;

/**
 * Queued and running wait this long before their card is rendered: an operation that ends within it
 * (a no-op scale, a cancelled job) shows its final state in one post instead of three. Final states and
 * approval requests render at once.
 */
export const interimCardDelayMs = 150;
