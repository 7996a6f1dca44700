import type { Redis } from "ioredis";
import { auditMaxLength } from "../audit/audit-log.ts";
import { stateTtlMs } from "../notify/status-store.ts";
import { transitionLua } from "../notify/transition-lua.ts";
import type { Keys } from "./keys.ts";

/**
 * Approval requests are jobs that have not been queued yet: the job's state hash holds the payload, the
 * number of approvals needed and the deadline; its card carries Approve and Reject. Every decision is one
 * script, so two people clicking at once both count, once each, and exactly one click sees the quorum.
 */
const requestScript = `${transitionLua}
local state, audit, cards, approvals, pending = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobId, data, need, expiresAt, text, requester, auditMax, ttl, kind = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
if redis.call('EXISTS', state) == 1 then return 0 end
local now = nowMs()
-- A newer request for the same target voids the older one and its approvals.
local older = redis.call('GET', pending)
if older and older ~= jobId and kind == 'deploy' then
  local olderState = string.gsub(state, '[^:]+$', older)
  if redis.call('HGET', olderState, 'phase') == 'pending-approval' then
    transition(olderState, olderState, audit, cards, older, 'superseded', 'Superseded by a newer request (' .. jobId .. '); its approvals no longer count', now, 0, auditMax, ttl, {}, {})
    redis.call('ZREM', approvals, older)
  end
end
redis.call('SET', pending, jobId, 'PX', ttl)
redis.call('HSET', state, 'data', data, 'need', need, 'expiresAt', expiresAt, 'requester', requester)
transition(state, state, audit, cards, jobId, 'pending-approval', text, now, 0, auditMax, ttl, {}, {})
redis.call('ZADD', approvals, expiresAt, jobId)
return 1
`;

const decideScript = `${transitionLua}
local state, audit, cards, approvals, voters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobId, voterId, voterName, decision, auditMax, ttl, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local now = nowMs()
local phase = redis.call('HGET', state, 'phase')
if phase ~= 'pending-approval' then return {'closed', phase or 'unknown'} end
local expiresAt = tonumber(redis.call('HGET', state, 'expiresAt') or '0')
if now >= expiresAt then
  transition(state, state, audit, cards, jobId, 'cancelled', 'Expired: nobody decided in time; nothing ran', now, 0, auditMax, ttl, { 'finishedAt', tostring(now) }, {})
  redis.call('ZREM', approvals, jobId)
  return {'expired'}
end
if decision == 'expire' then return {'open'} end
if decision == 'cancel' then
  transition(state, state, audit, cards, jobId, 'cancelled', 'Cancelled by ' .. voterName .. '; nothing ran', now, 0, auditMax, ttl, { 'finishedAt', tostring(now) }, {})
  redis.call('ZREM', approvals, jobId)
  return {'cancelled'}
end
if decision == 'reject' then
  local text = 'Rejected by ' .. voterName .. (reason ~= '' and (': ' .. reason) or '') .. '; nothing ran'
  transition(state, state, audit, cards, jobId, 'cancelled', text, now, 0, auditMax, ttl, { 'finishedAt', tostring(now) }, {})
  redis.call('ZREM', approvals, jobId)
  return {'rejected'}
end
if redis.call('SADD', voters, voterId) == 0 then return {'duplicate'} end
redis.call('PEXPIRE', voters, ttl)
local names = redis.call('HGET', state, 'approvedBy')
names = names and (names .. ', ' .. voterName) or voterName
local count = redis.call('SCARD', voters)
local need = tonumber(redis.call('HGET', state, 'need') or '1')
if count >= need then
  transition(state, state, audit, cards, jobId, 'approved', 'Approved; queueing', now, 0, auditMax, ttl, { 'approvedBy', names }, {})
  -- Stays in the set briefly: if this process dies before queueing, the sweep queues it.
  redis.call('ZADD', approvals, now + 10000, jobId)
  return {'approved', names}
end
local text = 'Approved by ' .. names .. ' · ' .. count .. ' of ' .. need .. ' · waiting for more'
transition(state, state, audit, cards, jobId, 'pending-approval', text, now, 0, auditMax, ttl, { 'approvedBy', names }, {})
return {'counted', tostring(count), tostring(need)}
`;

export type Decision =
  | { outcome: "approved"; names: string }
  | { outcome: "counted"; count: number; need: number }
  | { outcome: "rejected" | "cancelled" | "expired" | "duplicate" | "open" }
  | { outcome: "closed"; phase: string };

type ApprovalRedis = Redis & {
  shipbotRequestApproval(...args: Array<string | number>): Promise<number>;
  shipbotDecide(...args: Array<string | number>): Promise<string[]>;
};

export interface Approvals {
  request(args: {
    jobId: string;
    data: string;
    need: number;
    expiresAt: number;
    text: string;
    requester: string;
    kind: string;
    service: string;
    env: string;
  }): Promise<boolean>;
  decide(
    jobId: string,
    voter: { id: string; name: string },
    decision: "approve" | "reject" | "expire" | "cancel",
    reason?: string,
  ): Promise<Decision>;
  /** Requests whose deadline passed (to expire) or that were approved but may not be queued yet. */
  due(now: number): Promise<string[]>;
  forget(jobId: string): Promise<void>;
}

export function createApprovals(redis: Redis, keys: Keys): Approvals {
  const r = redis as ApprovalRedis;
  if (typeof r.shipbotRequestApproval !== "function") {
    redis.defineCommand("shipbotRequestApproval", { numberOfKeys: 5, lua: requestScript });
    redis.defineCommand("shipbotDecide", { numberOfKeys: 5, lua: decideScript });
  }
  return {
    async request(a) {
      const created = await r.shipbotRequestApproval(
        keys.job(a.jobId),
        keys.audit,
        keys.cards,
        keys.approvals,
        keys.pendingApproval(a.service, a.env),
        a.jobId,
        a.data,
        a.need,
        a.expiresAt,
        a.text,
        a.requester,
        auditMaxLength,
        stateTtlMs,
        a.kind,
      );
      return created === 1;
    },
    async decide(jobId, voter, decision, reason = "") {
      const [outcome = "closed", a = "", b = "0"] = await r.shipbotDecide(
        keys.job(jobId),
        keys.audit,
        keys.cards,
        keys.approvals,
        `${keys.job(jobId)}:voters`,
        jobId,
        voter.id,
        voter.name,
        decision,
        auditMaxLength,
        stateTtlMs,
        reason,
      );
      if (outcome === "approved") return { outcome, names: a };
      if (outcome === "counted") return { outcome, count: Number(a), need: Number(b) };
      if (outcome === "closed") return { outcome, phase: a };
      return { outcome: outcome as "rejected" | "cancelled" | "expired" | "duplicate" | "open" };
    },
    due(now) {
      return redis.zrangebyscore(keys.approvals, "-inf", now, "LIMIT", 0, 100);
    },
    async forget(jobId) {
      await redis.zrem(keys.approvals, jobId);
    },
  };
}
