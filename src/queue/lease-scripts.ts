import type { Redis } from "ioredis";
import type { Keys } from "./keys.ts";

/**
 * One operation per service×environment at a time. A lease key names the job holding the target and
 * its fencing token; jobs that find the target busy wait in a sorted "line" (priority, then age) and
 * are woken when the holder releases. Each step is one Lua script: one round trip, atomic.
 *
 * Line members are "kind|requestedAt|jobId" so the script can apply supersede rules without reading
 * job data.
 */
const acquireScript = `
local lease, line, fenceKey, seen, marks = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobId, member, score, ttl, stale, kind, ts = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])

local mark = redis.call('HGET', marks, jobId)
if mark then
  redis.call('ZREM', line, member)
  redis.call('HDEL', seen, jobId)
  redis.call('HDEL', marks, jobId)
  return {'marked', mark}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = redis.call('GET', lease)
local holderId = holder and string.match(holder, '^([^|]+)|') or false
local busy = holder and holderId ~= jobId

if not busy and holderId ~= jobId then
  -- Free: still, whoever is ahead in the line goes first. Heads that stopped checking in are dropped.
  while true do
    local head = redis.call('ZRANGE', line, 0, 0, 'WITHSCORES')
    if #head == 0 then break end
    local headId = string.match(head[1], '|([^|]+)$')
    if headId == jobId then break end
    local last = tonumber(redis.call('HGET', seen, headId) or '0')
    if now - last > stale then
      redis.call('ZREM', line, head[1])
      redis.call('HDEL', seen, headId)
    else
      if tonumber(head[2]) < score then busy = true; holderId = headId end
      break
    end
  end
end

if not busy then
  local fence = redis.call('INCR', fenceKey)
  redis.call('SET', lease, jobId .. '|' .. fence, 'PX', ttl)
  redis.call('ZREM', line, member)
  redis.call('HDEL', seen, jobId)
  return {'acquired', tostring(fence)}
end

local superseded = {}
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
local rank = redis.call('ZRANK', line, member)
local reply = {'busy', holderId or '', tostring(rank + 1)}
for _, id in ipairs(superseded) do table.insert(reply, id) end
return reply
`;

const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('HDEL', KEYS[3], ARGV[2])
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if #head == 0 then return false end
return string.match(head[1], '|([^|]+)$')
`;

const renewScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

export type AcquireResult =
  | { status: "acquired"; fence: number }
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
  acquire(request: LeaseRequest, options: { ttlMs: number; staleMs: number }): Promise<AcquireResult>;
  /** Returns the id of the job now first in line, if any, so the caller can wake it. */
  release(request: LeaseRequest, fence: number): Promise<string | null>;
  renew(request: LeaseRequest, fence: number, ttlMs: number): Promise<boolean>;
  /** Removes a job from its line without touching the lease (cancel). */
  leaveLine(request: LeaseRequest): Promise<void>;
  mark(jobId: string, mark: string): Promise<void>;
  clearMark(jobId: string): Promise<void>;
  position(request: LeaseRequest): Promise<number | undefined>;
  holder(service: string, env: string): Promise<string | undefined>;
}

type ScriptRedis = Redis & {
  shipbotAcquire(...args: Array<string | number>): Promise<string[]>;
  shipbotRelease(...args: Array<string | number>): Promise<string | null>;
  shipbotRenew(...args: Array<string | number>): Promise<number>;
};

export function lineMember(request: LeaseRequest): string {
  return `${request.kind}|${request.requestedAt}|${request.jobId}`;
}

/** Priority first (rollback before deploy before scale), then arrival. */
export function lineScore(request: LeaseRequest): number {
  return request.priority * 1e13 + request.requestedAt;
}

export function createLeases(redis: Redis, keys: Keys): Leases {
  const r = redis as ScriptRedis;
  if (typeof r.shipbotAcquire !== "function") {
    redis.defineCommand("shipbotAcquire", { numberOfKeys: 5, lua: acquireScript });
    redis.defineCommand("shipbotRelease", { numberOfKeys: 3, lua: releaseScript });
    redis.defineCommand("shipbotRenew", { numberOfKeys: 1, lua: renewScript });
  }
  return {
    async acquire(request, { ttlMs, staleMs }) {
      const reply = await r.shipbotAcquire(
        keys.lease(request.service, request.env),
        keys.line(request.service, request.env),
        keys.fence(request.service, request.env),
        keys.lineSeen,
        keys.marks,
        request.jobId,
        lineMember(request),
        lineScore(request),
        ttlMs,
        staleMs,
        request.kind,
        request.requestedAt,
      );
      const [status, a = "", b = "0", ...rest] = reply;
      if (status === "acquired") return { status, fence: Number(a) };
      if (status === "busy") return { status, holder: a, position: Number(b), superseded: rest };
      const [what, by = ""] = a.split("|");
      return what === "cancelled" ? { status: "cancelled", by } : { status: "superseded", by };
    },
    async release(request, fence) {
      return r.shipbotRelease(
        keys.lease(request.service, request.env),
        keys.line(request.service, request.env),
        keys.marks,
        `${request.jobId}|${fence}`,
        request.jobId,
      );
    },
    async renew(request, fence, ttlMs) {
      return (
        (await r.shipbotRenew(
          keys.lease(request.service, request.env),
          `${request.jobId}|${fence}`,
          ttlMs,
        )) === 1
      );
    },
    async leaveLine(request) {
      await redis.zrem(keys.line(request.service, request.env), lineMember(request));
    },
    async mark(jobId, mark) {
      await redis.hset(keys.marks, jobId, mark);
    },
    async clearMark(jobId) {
      await redis.hdel(keys.marks, jobId);
    },
    async position(request) {
      const rank = await redis.zrank(keys.line(request.service, request.env), lineMember(request));
      return rank === null ? undefined : rank + 1;
    },
    async holder(service, env) {
      const value = await redis.get(keys.lease(service, env));
      return value?.split("|")[0];
    },
  };
}
