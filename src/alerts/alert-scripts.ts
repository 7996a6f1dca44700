import { auditAppendLua } from "../audit/audit-lua.ts";
/**
 * Lua run once per alert group per channel for each notification. It compares every alert's
 * "status|startsAt|endsAt" with what the group already holds, so a redelivered or repeated notification
 * changes nothing and marks no card. A resolved alert never goes back to firing with the same start (that
 * would be an older delivery arriving late). When something changed it bumps the group's sequence and
 * marks the card in the notifier's set (ZADD LT: an earlier mark wins).
 *
 * How many alerts Alertmanager left out (`max_alerts`) is kept as the group's `truncated` field; a new
 * count changes the card even when every alert sent is a repeat, but is not an alert change.
 *
 * KEYS: group hash, cards set. ARGV: card id, meta JSON, delay for a new card, delay for an update,
 * ttl seconds, alerts left out, then triples of fingerprint, signature, alert JSON.
 * Returns { changed alerts, seq, 1 if the group is new }.
 */
export const groupScript = `
local group, cards = KEYS[1], KEYS[2]
local cardId, meta, newDelay, updateDelay, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local truncated = ARGV[6]
local isNew = redis.call('EXISTS', group) == 0
local changed = 0
local truncatedChanged = (redis.call('HGET', group, 'truncated') or '0') ~= truncated
for i = 7, #ARGV, 3 do
  local fp, sig, body = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local old = redis.call('HGET', group, 's:' .. fp)
  if old ~= sig then
    local stale = false
    if old then
      local oldStatus, oldStart = string.match(old, '^([^|]*)|([^|]*)|')
      local newStatus, newStart = string.match(sig, '^([^|]*)|([^|]*)|')
      if oldStatus == 'resolved' and newStatus == 'firing' and oldStart == newStart then stale = true end
    end
    if not stale then
      redis.call('HSET', group, 's:' .. fp, sig, 'f:' .. fp, body)
      changed = changed + 1
    end
  end
end
if changed == 0 and not truncatedChanged then
  return { 0, tonumber(redis.call('HGET', group, 'seq') or '0'), 0 }
end
redis.call('HSET', group, 'meta', meta, 'truncated', truncated)
local seq = redis.call('HINCRBY', group, 'seq', 1)
redis.call('EXPIRE', group, ttl)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', cards, 'LT', now + (isNew and newDelay or updateDelay), cardId)
return { changed, seq, isNew and 1 or 0 }
`;

/**
 * Incident mode for one service×environment, driven by each severe alert. The target stays in incident
 * mode while any of its severe alerts fires; the first one to fire names the incident.
 *
 * KEYS: incidents hash, the target's alerts hash. ARGV: field "<service>:<env>", fingerprint, status,
 * startsAt, incident JSON, ttl seconds. Returns 1 when the target is in incident mode afterwards.
 */
export const incidentScript = `
local incidents, alerts = KEYS[1], KEYS[2]
local field, fp, status, startsAt, incident, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local old = redis.call('HGET', alerts, fp)
if status == 'firing' then
  if old ~= 'resolved|' .. startsAt then
    redis.call('HSET', alerts, fp, 'firing|' .. startsAt)
    redis.call('HSETNX', incidents, field, incident)
  end
else
  redis.call('HSET', alerts, fp, 'resolved|' .. startsAt)
end
redis.call('EXPIRE', alerts, ttl)
for _, v in ipairs(redis.call('HVALS', alerts)) do
  if string.sub(v, 1, 7) == 'firing|' then return 1 end
end
redis.call('HDEL', incidents, field)
return 0
`;

/**
 * Every alert's firing and resolution goes to the audit ledger once (resends from Alertmanager change
 * nothing), with its service, environment and severity: `dora` reads them for change failures.
 *
 * KEYS: the ledger hash (fingerprint → last state written), the audit stream. ARGV: audit max length,
 * ttl seconds, then per alert: fingerprint, state ("firing|<startsAt>"…), status, alertname, service,
 * env, severity, startsAt, endsAt. Returns how many entries were appended.
 */
export const ledgerScript = `${auditAppendLua}
local seen, audit = KEYS[1], KEYS[2]
local auditMax, ttl = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local appended = 0
for i = 3, #ARGV, 9 do
  local fp, mark = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', seen, fp) ~= mark then
    redis.call('HSET', seen, fp, mark)
    auditAppend(audit, auditMax, { 'type', 'alert.' .. ARGV[i + 2], 'at', now, 'fingerprint', fp,
      'alert', ARGV[i + 3], 'service', ARGV[i + 4], 'env', ARGV[i + 5], 'severity', ARGV[i + 6],
      'startsAt', ARGV[i + 7], 'endsAt', ARGV[i + 8] })
    appended = appended + 1
  end
end
redis.call('EXPIRE', seen, ttl)
return appended
`;
