import type { Redis } from "ioredis";
import { auditMaxLength } from "../audit/audit-log.ts";
import { reminderCardPrefix } from "../core/approval-reminder.ts";
import { stateTtlMs } from "../notify/status-store.ts";
import { transitionLua } from "../notify/transition-lua.ts";
import type { Keys } from "./keys.ts";

/**
 * Approval requests are jobs that have not been queued yet: the job's state hash holds the payload, the
 * number of approvals needed and the deadline; its card carries Approve and Reject. Every decision is one
 * script, so two people clicking at once both count, once each, and exactly one click sees the quorum.
 */
const requestScript = `${transitionLua}
local state, audit, cards, approvals, pending, reminders = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local jobId, data, need, expiresAt, text, requester, auditMax, ttl, kind = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local from, distinct, remindAt, authorsKnown, authors = ARGV[10], ARGV[11], tonumber(ARGV[12]), ARGV[13], ARGV[14]
if redis.call('EXISTS', state) == 1 then return 0 end
local now = nowMs()
-- A newer deploy request for the same target voids the older deploy request and its approvals. Only
-- deploys supersede and are superseded (a rollback or scale request stands), so the key names the
-- target's pending deploy request alone: a scale or rollback requested in between must not hide it.
if kind == 'deploy' then
  local older = redis.call('GET', pending)
  if older and older ~= jobId then
    local olderState = string.gsub(state, '[^:]+$', older)
    local o = redis.call('HMGET', olderState, 'phase', 'kind')
    if o[1] == 'pending-approval' and o[2] == 'deploy' then
      transition(olderState, olderState, audit, cards, older, 'superseded', 'Superseded by a newer request (' .. jobId .. '); its approvals no longer count', now, 0, auditMax, ttl, {}, {})
      redis.call('ZREM', approvals, older)
    end
  end
  redis.call('SET', pending, jobId, 'PX', ttl)
end
redis.call('HSET', state, 'data', data, 'need', need, 'expiresAt', expiresAt, 'requester', requester, 'from', from, 'distinct', distinct)
-- The people who wrote the change, as login:/email: keys separated by spaces; present (maybe empty) only when they are known.
if authorsKnown == '1' then redis.call('HSET', state, 'authors', authors) end
transition(state, state, audit, cards, jobId, 'pending-approval', text, now, 0, auditMax, ttl, {}, {})
redis.call('ZADD', approvals, expiresAt, jobId)
if remindAt > 0 then redis.call('ZADD', reminders, remindAt, jobId) end
return 1
`;

const decideScript = `${transitionLua}
local state, audit, cards, approvals, voters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobId, voterId, voterName, decision, auditMax, ttl, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
-- roles: the approver's eligible roles in policy order when approvals must come from different roles, else ''.
-- identities: the approver's login:/email: keys, separated by spaces; checkAuthors: '1' when authors may not approve.
local roles, identities, checkAuthors = ARGV[8], ARGV[9], ARGV[10]
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
if redis.call('SISMEMBER', voters, voterId) == 1 then return {'duplicate'} end
if checkAuthors == '1' then
  local authors = redis.call('HGET', state, 'authors')
  if not authors then return {'refused', 'authors-unknown'} end
  local wrote = {}
  for a in string.gmatch(authors, '%S+') do wrote[a] = true end
  for id in string.gmatch(identities, '%S+') do
    if wrote[id] then return {'refused', 'author'} end
  end
end
-- Each counted approval takes a role nobody has counted for yet: the first of the approver's that is free.
local label = voterName
if roles ~= '' then
  local used = redis.call('HGET', state, 'groups') or ''
  local taken = {}
  for g in string.gmatch(used, '[^,]+') do taken[g] = true end
  local role
  for g in string.gmatch(roles, '[^,]+') do
    if not taken[g] then role = g; break end
  end
  if not role then return {'refused', 'group', used} end
  redis.call('HSET', state, 'groups', used == '' and role or (used .. ',' .. role))
  label = voterName .. ' (' .. role .. ')'
end
redis.call('SADD', voters, voterId)
redis.call('PEXPIRE', voters, ttl)
local names = redis.call('HGET', state, 'approvedBy')
names = names and (names .. ', ' .. label) or label
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

/**
 * Claims the reminders that are due and marks each one's reply card (`r-<job id>`) for the notifier, in
 * one script: the ZREM is the claim and the ZADD to the cards set happens with it, so with several
 * sweepers, or a sweeper that dies, every reminder is marked once; the notifier then posts it once. A
 * request already decided or expired gets none.
 */
const remindScript = `${transitionLua}
local reminders, audit, cards = KEYS[1], KEYS[2], KEYS[3]
local jobPrefix, auditMax, limit, cardPrefix = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = nowMs()
local reminded = {}
for _, jobId in ipairs(redis.call('ZRANGEBYSCORE', reminders, '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', reminders, jobId)
  local state = jobPrefix .. jobId
  local f = redis.call('HMGET', state, 'phase', 'expiresAt', 'kind', 'service', 'env', 'actor', 'trace')
  if f[1] == 'pending-approval' and now < tonumber(f[2] or '0') then
    redis.call('HSET', state, 'remindedAt', tostring(now))
    auditAppend(audit, auditMax, { 'type', 'approval.reminded', 'at', tostring(now), 'job', jobId,
      'kind', f[3] or '', 'service', f[4] or '', 'env', f[5] or '', 'actor', f[6] or '', 'trace', f[7] or '' })
    redis.call('ZADD', cards, 'NX', now, cardPrefix .. jobId)
    reminded[#reminded + 1] = jobId
  end
end
return reminded
`;

export type Decision =
  | { outcome: "approved"; names: string }
  | { outcome: "counted"; count: number; need: number }
  | { outcome: "rejected" | "cancelled" | "expired" | "duplicate" | "open" }
  | { outcome: "closed"; phase: string }
  /** Not counted: the approver wrote the change, its authors are unknown, or their roles already approved. */
  | { outcome: "refused"; rule: "author" | "authors-unknown" | "group"; used: string[] };

/** What the decide script needs to know about an approver beyond who they are. */
export interface ApproverFacts {
  /** With `distinctGroups`: the approver's roles of `from`, in the policy's order; else empty. */
  roles?: string[];
  /** The approver's `login:`/`email:` keys (see identitiesOf). */
  identities?: string[];
  /** Whether commit authors may not approve (checked against the authors recorded on the request). */
  checkAuthors?: boolean;
  /** A rejection's reason. */
  reason?: string;
}

type ApprovalRedis = Redis & {
  shipbotRequestApproval(...args: Array<string | number>): Promise<number>;
  shipbotDecide(...args: Array<string | number>): Promise<string[]>;
  shipbotRemind(...args: Array<string | number>): Promise<string[]>;
};

/** Keys never contain spaces: the scripts split lists on them. */
const spaceless = (keys: string[]): string => keys.filter((k) => !/\s/.test(k)).join(" ");

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
    /** The policy's roles, for the reminder's "still needs … from". */
    from: string[];
    /** Whether each approval must come through a different role of `from`. */
    distinctGroups: boolean;
    /** When a reminder is posted in the card's thread; undefined: never. */
    remindAt?: number;
    /** The commit authors' identity keys; undefined: not recorded (the rule does not apply). */
    authors?: string[];
  }): Promise<boolean>;
  decide(
    jobId: string,
    voter: { id: string; name: string },
    decision: "approve" | "reject" | "expire" | "cancel",
    facts?: ApproverFacts,
  ): Promise<Decision>;
  /**
   * Marks the reply cards of due reminders for the notifier; returns the requests reminded (each one once,
   * across processes).
   */
  remind(limit?: number): Promise<string[]>;
  /** Requests whose deadline passed (to expire) or that were approved but may not be queued yet. */
  due(now: number): Promise<string[]>;
  forget(jobId: string): Promise<void>;
}

export function createApprovals(redis: Redis, keys: Keys): Approvals {
  const r = redis as ApprovalRedis;
  if (typeof r.shipbotRequestApproval !== "function") {
    redis.defineCommand("shipbotRequestApproval", { numberOfKeys: 6, lua: requestScript });
    redis.defineCommand("shipbotDecide", { numberOfKeys: 5, lua: decideScript });
    redis.defineCommand("shipbotRemind", { numberOfKeys: 3, lua: remindScript });
  }
  return {
    async request(a) {
      const created = await r.shipbotRequestApproval(
        keys.job(a.jobId),
        keys.audit,
        keys.cards,
        keys.approvals,
        keys.pendingApproval(a.service, a.env),
        keys.approvalReminders,
        a.jobId,
        a.data,
        a.need,
        a.expiresAt,
        a.text,
        a.requester,
        auditMaxLength,
        stateTtlMs,
        a.kind,
        a.from.join(","),
        a.distinctGroups ? "1" : "0",
        a.remindAt ?? 0,
        a.authors ? "1" : "0",
        spaceless(a.authors ?? []),
      );
      return created === 1;
    },
    async decide(jobId, voter, decision, facts = {}) {
      const [outcome = "closed", a = "", b = ""] = await r.shipbotDecide(
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
        facts.reason ?? "",
        (facts.roles ?? []).join(","),
        spaceless(facts.identities ?? []),
        facts.checkAuthors ? "1" : "0",
      );
      if (outcome === "approved") return { outcome, names: a };
      if (outcome === "refused")
        return {
          outcome,
          rule: a as "author" | "authors-unknown" | "group",
          used: b.split(",").filter(Boolean),
        };
      if (outcome === "counted") return { outcome, count: Number(a), need: Number(b) };
      if (outcome === "closed") return { outcome, phase: a };
      return { outcome: outcome as "rejected" | "cancelled" | "expired" | "duplicate" | "open" };
    },
    due(now) {
      return redis.zrangebyscore(keys.approvals, "-inf", now, "LIMIT", 0, 100);
    },
    remind(limit = 100) {
      return r.shipbotRemind(
        keys.approvalReminders,
        keys.audit,
        keys.cards,
        keys.job(""),
        auditMaxLength,
        limit,
        reminderCardPrefix,
      );
    },
    async forget(jobId) {
      await redis.zrem(keys.approvals, jobId);
    },
  };
}
