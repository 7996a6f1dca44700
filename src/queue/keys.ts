/**
 * Every Redis key shipbot uses. All keys of the operations queue share the hash tag `{ops}` so the
 * Lua scripts that touch several of them run on one shard of a Redis Cluster; the notification queue
 * has its own tag so the two queues can live on different shards.
 */
export interface Keys {
  prefix: string;
  opsQueue: string;
  lease(service: string, env: string): string;
  line(service: string, env: string): string;
  fence(service: string, env: string): string;
  history(service: string, env: string): string;
  /** List: "<kind>:<ms>" run times of the target's last finished operations, newest first (queue ETAs). */
  durations(service: string, env: string): string;
  durationsPrefix: string;
  /** Hash: job id → last time a waiting job looked at its line (ms). */
  lineSeen: string;
  /** Hash: job id → "cancelled|<by>" or "superseded|<job id>". */
  marks: string;
  job(jobId: string): string;
  /** BullMQ's own hash for a job of the operations queue. */
  bullJob(jobId: string): string;
  /** BullMQ's lock key of an active job: it exists while a live worker holds the job. */
  bullLock(jobId: string): string;
  /** Prefix of BullMQ's keys for the operations queue (scripts build job keys from it). */
  bullPrefix: string;
  historyPrefix: string;
  /** Sorted set: cards to render, scored by when. */
  cards: string;
  /** Sorted set: cards being rendered, scored by when the claim expires. */
  cardsInflight: string;
  /** Hash: "<service|*>:<env>" → lock JSON. */
  locks: string;
  /** Hash: env → ad hoc freeze JSON. */
  freezes: string;
  /** Hash: "<service>:<env>" → incident JSON, set by firing severe alerts (src/alerts). */
  incidents: string;
  /** Sorted set: approval requests by when they expire (or when an approved one must be queued). */
  approvals: string;
  /** Sorted set: approval requests by when their card shows a reminder (removed when claimed). */
  approvalReminders: string;
  /** String: the deploy request pending for a target, so a newer deploy request voids it. */
  pendingApproval(service: string, env: string): string;
  /** BullMQ's event stream of the operations queue, read by the deriver. */
  opsEvents: string;
  audit: string;
  /**
   * Hash of a fan-out's batch: its description ("meta", JSON) and per-bucket counters kept by the
   * transition script, which derives this key from `cards` (same `{ops}` tag, so one shard).
   */
  batch(batchId: string): string;
  /** List: the first failures of a batch, "<service>|<text>", for its card. */
  batchFailures(batchId: string): string;
  cardRef(jobId: string): string;
  pace(key: string): string;
}

export function createKeys(prefix: string): Keys {
  const ops = `${prefix}:{ops}`;
  const notify = `${prefix}:{notify}`;
  return {
    prefix,
    opsQueue: "{ops}",
    lease: (service, env) => `${ops}:lease:${service}:${env}`,
    line: (service, env) => `${ops}:line:${service}:${env}`,
    fence: (service, env) => `${ops}:fence:${service}:${env}`,
    history: (service, env) => `${ops}:history:${service}:${env}`,
    durations: (service, env) => `${ops}:durations:${service}:${env}`,
    durationsPrefix: `${ops}:durations:`,
    lineSeen: `${ops}:line-seen`,
    marks: `${ops}:marks`,
    job: (jobId) => `${ops}:job:${jobId}`,
    bullJob: (jobId) => `${ops}:${jobId}`,
    bullLock: (jobId) => `${ops}:${jobId}:lock`,
    bullPrefix: `${ops}:`,
    historyPrefix: `${ops}:history:`,
    cards: `${ops}:cards`,
    cardsInflight: `${ops}:cards-inflight`,
    opsEvents: `${ops}:events`,
    locks: `${ops}:locks`,
    approvals: `${ops}:approvals`,
    approvalReminders: `${ops}:approval-reminders`,
    pendingApproval: (service, env) => `${ops}:pending-approval:${service}:${env}`,
    freezes: `${ops}:freezes`,
    incidents: `${ops}:incidents`,
    audit: `${ops}:audit`,
    batch: (batchId) => `${ops}:batch:${batchId}`,
    batchFailures: (batchId) => `${ops}:batch:${batchId}:failed`,
    cardRef: (jobId) => `${notify}:card:${jobId}`,
    pace: (key) => `${notify}:pace:${key}`,
  };
}
