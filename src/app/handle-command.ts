import { randomUUID } from "node:crypto";
import type { Tracer } from "@opentelemetry/api";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { AuditLog } from "../audit/audit-log.ts";
import {
  approvalFor,
  describeApproval,
  forbidsCommitAuthors,
  reminderAt,
  toIdentityKeys,
} from "../core/approval-policy.ts";
import { breakGlassApproval } from "../core/break-glass.ts";
import { type Card, createCard } from "../core/card.ts";
import type { JobSpec, Query } from "../core/command-module.ts";
import { type Config, failureWindowMinutes, resolveTarget } from "../core/config.ts";
import { computeDora, renderDoraCard } from "../core/dora.ts";
import { ShipbotError, toShipbotError } from "../core/errors.ts";
import { activeFreeze, describeFreeze } from "../core/freeze-windows.ts";
import { type ChatCommand, terminalPhases } from "../core/model.ts";
import { authorize, describeDenial } from "../core/policy.ts";
import { describeQueue } from "../core/queue-eta.ts";
import { describeBatch } from "../core/render-batch-card.ts";
import { type CommandRegistry, routeCommand } from "../core/route-command.ts";
import type { ExecutorPort } from "../executors/port.ts";
import {
  type CommitPerson,
  compareCommits,
  findActiveDeployment,
  type GitHubClient,
  type ResolvedRef,
  resolveRef,
  toRepoRef,
} from "../github/index.ts";
import type { HistoryEntry, StatusStore } from "../notify/status-store.ts";
import { type Metrics, toCommandWord } from "../observability/metrics.ts";
import { currentTraceRef, inSpan } from "../observability/tracing.ts";
import type { Approvals } from "../queue/approval-scripts.ts";
import { createJobId } from "../queue/job-id.ts";
import type { Keys } from "../queue/keys.ts";
import { type OpsQueue, toJobData } from "../queue/ops-queue.ts";
import { applyControl, listHolds } from "./apply-control.ts";
import { describeFreezeInForce, recordBreakGlassRequest } from "./break-glass.ts";
import { readDurations, readLedger } from "./read-ledger.ts";

export interface CommandHandlerDeps {
  config: Config;
  registry: CommandRegistry;
  ops: OpsQueue;
  status: StatusStore;
  audit: AuditLog;
  executor: ExecutorPort;
  log: Logger;
  /** For locks and freezes. */
  redis: Redis;
  keys: Keys;
  approvals: Approvals;
  /** Traces, when configured. */
  tracer?: Tracer;
  /** To pin a version to its commit when an approval is requested: approvers approve that commit. */
  github?: GitHubClient;
  now?: () => number;
  /** Counts each command by name and outcome (in process memory; no I/O). */
  metrics?: Pick<Metrics, "countCommand">;
}

export interface CommandReply {
  ok: boolean;
  /** An immediate answer for the person (errors, queries, previews); job cards come from the notifier. */
  card?: Card;
  jobIds: string[];
  error?: ShipbotError;
  traceId: string;
}

export type CommandHandler = (command: ChatCommand) => Promise<CommandReply>;

function errorCard(error: ShipbotError): Card {
  const card = createCard(error.code === "forbidden" ? "warning" : "failure", error.message);
  if (error.hint) card.lines.push(error.hint);
  return card;
}

/** Targets a dry run describes one by one; a bigger fan-out ends with "… and N more". */
const previewLines = 20;

/** One finished operation: when, what (the image, or for a deploy that failed early the version asked for), who, how it ended. */
function describeHistory(h: HistoryEntry): string {
  const when = new Date(h.at).toISOString().replace("T", " ").slice(0, 16);
  const what = h.image ?? h.version;
  return `${when} UTC · ${h.kind}${what ? ` ${what}` : ""} by ${h.by} · ${h.phase} (${h.jobId})`;
}

function describeSpec(spec: JobSpec): string {
  const t = spec.target;
  if (spec.kind === "deploy") return `${t.service} in ${t.env}: image → ${t.image}:${spec.version}`;
  if (spec.kind === "rollback")
    return `${t.service} in ${t.env}: back to ${spec.revision === undefined ? "the previous revision" : `revision ${spec.revision}`}`;
  return `${t.service} in ${t.env}: ${spec.replicas} replicas (allowed ${t.replicas.min}–${t.replicas.max})`;
}

/**
 * The accept path shared by every adapter: route (pure), then enqueue, answer a query or cancel.
 * Every command and its outcome goes to the audit stream.
 */
/**
 * What approvers are asked to let through: the commits between what GitHub shows as deployed and the new
 * one, with their authors. The preview is best effort; `authors` is undefined when GitHub could not say
 * who wrote the change (then `problem` says why), which matters where commit authors may not approve.
 */
async function describeChange(
  github: GitHubClient,
  repo: string,
  env: string,
  resolved: ResolvedRef,
  log: Logger,
): Promise<{ preview: string; authors?: CommitPerson[]; problem?: string }> {
  const sha = resolved.sha;
  try {
    const ref = toRepoRef(repo);
    const active = await findActiveDeployment(github, ref, env);
    // Nothing recorded to compare with: the deployed commit's own authors are all that can be known.
    if (!active) return { preview: " · first recorded deploy here", authors: resolved.authors };
    if (active.sha === sha) return { preview: " · already deployed", authors: [] };
    const diff = await compareCommits(github, ref, active.sha, sha, { limit: 20 });
    const authors = diff.authorsComplete
      ? { authors: diff.authors }
      : { problem: `GitHub lists only part of the ${diff.aheadBy} commits since ${active.sha.slice(0, 7)}` };
    const names = [...new Set(diff.authors.map((a) => a.login ?? a.name ?? "").filter(Boolean))].slice(0, 5);
    if (diff.status === "behind")
      return { preview: ` · goes back ${diff.behindBy} commit${diff.behindBy === 1 ? "" : "s"}`, ...authors };
    return {
      preview: ` · ${diff.aheadBy} commit${diff.aheadBy === 1 ? "" : "s"} since ${active.sha.slice(0, 7)}${names.length ? ` by ${names.join(", ")}` : ""}`,
      ...authors,
    };
  } catch (error) {
    log.warn({ err: error, repo, env }, "could not describe the change for the approval card");
    return { preview: "", problem: toShipbotError(error).message };
  }
}

export function createCommandHandler(deps: CommandHandlerDeps): CommandHandler {
  const { config, registry, ops, status, audit, executor, log } = deps;
  const now = deps.now ?? Date.now;

  async function previewCard(specs: JobSpec[], skipped: string[] = []): Promise<Card> {
    const card = createCard("info", "Dry run: nothing was changed");
    // A fan-out previews a summary and its first targets, not one line (and one status call) per target.
    const [first] = specs;
    if (specs.length > 1 && first)
      card.lines.push(
        describeBatch({
          kind: first.kind,
          env: first.target.env,
          version: first.version,
          total: specs.length,
        }),
      );
    const shown = specs.slice(0, previewLines);
    const lines = await Promise.all(
      shown.map(async (spec) => {
        const t = spec.target;
        try {
          const current = await executor.status({
            namespace: t.namespace,
            deployment: t.deployment,
            container: t.container,
          });
          const now = `now ${current.image}, ${current.available}/${current.desired} available, revision ${current.revision}`;
          return `${describeSpec(spec)} (${now})`;
        } catch (error) {
          return `${describeSpec(spec)} (current state unknown: ${toShipbotError(error).message})`;
        }
      }),
    );
    card.lines.push(...lines);
    if (specs.length > shown.length)
      card.lines.push(`… and ${(specs.length - shown.length).toLocaleString("en-US")} more`);
    if (skipped.length > 0)
      card.lines.push(
        `Left out: ${skipped.length} you may not operate (${skipped.slice(0, 10).join(", ")}${skipped.length > 10 ? ", …" : ""})`,
      );
    return card;
  }

  async function answer(query: Query): Promise<Card> {
    if (query.kind === "dora") {
      const { operations, alerts } = await readLedger(audit, config, now() - query.days * 86_400_000);
      const windowMinutes = failureWindowMinutes(config);
      return renderDoraCard(
        computeDora(
          operations,
          query.env === undefined ? { service: query.service } : { service: query.service, env: query.env },
          now(),
          query.days,
          windowMinutes * 60_000,
          alerts,
        ),
        query,
        windowMinutes,
      );
    }
    if (query.kind === "history") {
      const entries = await status.history(query.service, query.env, 20);
      const card = createCard("info", `History of ${query.service} in ${query.env}`);
      if (entries.length === 0) card.lines.push("No operations recorded yet.");
      for (const h of entries) card.lines.push(describeHistory(h));
      return card;
    }
    if (query.kind === "queue") {
      const states = (await ops.list()).filter((s) => query.env === undefined || s.data.env === query.env);
      const card = createCard(
        "info",
        `Queue${query.env ? ` for ${query.env}` : ""}: ${states.length} job(s)`,
      );
      // Locks and freezes block jobs, so they are part of the queue's story.
      card.lines.push(...(await listHolds(deps.redis, deps.keys, now(), query.env)));
      if (states.length === 0) card.lines.push("Nothing running or waiting.");
      const durations = await readDurations(deps.redis, deps.keys, states);
      for (const line of describeQueue(states, durations, now())) card.lines.push(line);
      return card;
    }
    const svc = config.services[query.service];
    const envs = query.env ? [query.env] : Object.keys(svc?.environments ?? {});
    const card = createCard("info", `Status of ${query.service}`);
    for (const env of envs) {
      const target = resolveTarget(config, query.service, env);
      if (!target) continue;
      try {
        const s = await executor.status({
          namespace: target.namespace,
          deployment: target.deployment,
          container: target.container,
        });
        const rollout = s.rollout.done ? "rolled out" : s.rollout.message;
        card.lines.push(
          `${env}: ${s.image} · ${s.available}/${s.desired} available · revision ${s.revision} · ${rollout}`,
        );
      } catch (error) {
        card.lines.push(`${env}: unknown (${toShipbotError(error).message})`);
      }
      const history = await status.history(query.service, env, 5);
      if (history.length === 0) card.lines.push("  no operations recorded yet");
      for (const h of history) card.lines.push(`  ${describeHistory(h)}`);
    }
    return card;
  }

  async function handleCommand(command: ChatCommand): Promise<CommandReply> {
    // With tracing on, the job's trace reference joins the worker's and the notifier's spans to this one.
    const traceId = currentTraceRef() ?? randomUUID().slice(0, 18);
    // Built when an audit entry or a log line needs them: an accepted command needs neither.
    const base = () => ({
      actor: command.user.id,
      text: command.text.slice(0, 300),
      command: command.id,
      trace: traceId,
    });
    const context = () => ({
      trace: traceId,
      user: command.user.id,
      platform: command.conversation.platform,
    });
    let name: string | undefined;
    try {
      const routed = routeCommand(command, config, registry, now());
      name = routed.name;
      const result = routed.result;
      let reply: CommandReply;
      if (result.type === "reply") {
        reply = { ok: true, card: result.card, jobIds: [], traceId };
      } else if (result.type === "query") {
        reply = { ok: true, card: await answer(result.query), jobIds: [], traceId };
      } else if (result.type === "cancel") {
        // A request still waiting for approval has no queued job yet: its state holds the payload.
        const pending = await status.read(result.jobId);
        const awaitingApproval = pending?.phase === "pending-approval";
        const data = awaitingApproval ? pending.data : await ops.find(result.jobId);
        if (!data) {
          // Ended and left no queued job (a cancelled job or request): say how, to whoever may cancel there.
          if (
            pending &&
            terminalPhases.has(pending.phase) &&
            authorize(config, command.user, "cancel", {
              service: pending.data.service,
              env: pending.data.env,
            }).allowed
          )
            throw new ShipbotError("conflict", `job ${result.jobId} already ended (${pending.phase})`);
          throw new ShipbotError(
            "not_found",
            `no job ${result.jobId}; it may have finished and been cleaned up`,
          );
        }
        const scope = { service: data.service, env: data.env };
        const decision = authorize(config, command.user, "cancel", scope);
        if (!decision.allowed) throw new ShipbotError("forbidden", describeDenial("cancel", scope, decision));
        if (awaitingApproval) {
          const closed = await deps.approvals.decide(result.jobId, command.user, "cancel");
          if (closed.outcome !== "cancelled")
            throw new ShipbotError("conflict", `request ${result.jobId} was already decided`);
          reply = {
            ok: true,
            card: createCard("success", `Cancelled request ${result.jobId}`),
            jobIds: [],
            traceId,
          };
        } else {
          const outcome = await ops.cancel(result.jobId, command.user.name);
          const text =
            outcome === "cancelled"
              ? `Cancelled ${result.jobId}`
              : `Cancelling ${result.jobId}: it was being picked up; it will not run`;
          reply = { ok: true, card: createCard("success", text), jobIds: [], traceId };
        }
      } else if (result.type === "control") {
        const card = await applyControl(result.control, command.user, now(), {
          redis: deps.redis,
          keys: deps.keys,
          config,
          ops,
          audit,
        });
        deps.metrics?.countCommand(routed.name, "answered");
        return { ok: true, card, jobIds: [], traceId };
      } else if (result.dryRun) {
        reply = { ok: true, card: await previewCard(result.jobs, result.skipped), jobIds: [], traceId };
      } else {
        // Scheduled freeze windows come from the config: refused here without any I/O. Ad hoc freezes and
        // locks live in Redis and are checked where the job runs, where a blocked job waits in line.
        const checked = new Set<string>();
        for (const spec of result.jobs) {
          // A fan-out shares one environment: check it once, not once per target.
          if (spec.kind === "rollback" || spec.breakGlass || checked.has(spec.target.env)) continue;
          checked.add(spec.target.env);
          const frozen = activeFreeze(config, spec.target.env, now());
          if (frozen)
            throw new ShipbotError(
              "locked",
              `${describeFreeze(frozen, spec.target.env)}; only rollbacks run`,
            );
        }
        // Operations that need approval become requests with Approve/Reject on their card; the rest
        // are queued now. Ids keep the command's index either way, so a redelivery maps to the same.
        // A break-glass deploy needs the environment's break-glass approval instead, and a freeze to pass.
        const needsApproval = result.jobs.map((spec) =>
          spec.breakGlass
            ? breakGlassApproval(config, spec.target.env)
            : approvalFor(config, spec.target.env, spec.kind),
        );
        if (needsApproval.some((p) => p !== undefined)) {
          const freezes = await Promise.all(
            result.jobs.map((spec) =>
              spec.breakGlass
                ? describeFreezeInForce(deps.redis, deps.keys, config, spec.target.env, now())
                : undefined,
            ),
          );
          // Everything GitHub must say is gathered before the first request is made: all or nothing.
          const prepared = [];
          for (const [index, spec] of result.jobs.entries()) {
            const jobId = createJobId(command.conversation.platform, command.id, index);
            const data = toJobData(spec, command, traceId);
            const policy = needsApproval[index];
            const repo = config.services[spec.target.service]?.github?.repo;
            let preview = "";
            let authors: string[] | undefined;
            let unknown = "shipbot has no GitHub access to learn who they are";
            if (policy && spec.kind === "deploy" && spec.version && repo && deps.github) {
              const resolved = await resolveRef(deps.github, toRepoRef(repo), spec.version);
              data.sha = resolved.sha;
              const change = await describeChange(deps.github, repo, spec.target.env, resolved, log);
              preview = change.preview;
              authors = change.authors?.flatMap(toIdentityKeys);
              unknown = `GitHub could not say who they are: ${change.problem ?? "no answer"}`;
            }
            // Fail closed: a rule that cannot be checked must not be skipped.
            const commitAuthors =
              policy !== undefined && forbidsCommitAuthors(config, policy, spec.kind, spec.target.service);
            if (commitAuthors && authors === undefined)
              throw new ShipbotError(
                "upstream",
                `${spec.target.service} in ${spec.target.env} may not be approved by its commit authors, and ${unknown}; nothing was requested`,
              );
            prepared.push({
              jobId,
              data,
              policy,
              preview,
              authors,
              commitAuthors,
              spec,
              freeze: freezes[index],
            });
          }
          const jobIds: string[] = [];
          for (const { jobId, data, policy, preview, authors, commitAuthors, spec, freeze } of prepared) {
            if (policy) {
              const expiresAt = now() + policy.expiresAfterMinutes * 60_000;
              const glass = spec.breakGlass ? ` · 🚨 break-glass: ${spec.breakGlass.reason}` : "";
              const remindAt = reminderAt(policy, expiresAt);
              const created = await deps.approvals.request({
                jobId,
                data: JSON.stringify(data),
                need: policy.required,
                expiresAt,
                text: `${describeApproval(policy, command.user.name, expiresAt, { commitAuthors })}${data.sha ? ` · commit ${data.sha.slice(0, 7)}` : ""}${preview}${glass}`,
                requester: command.user.id,
                kind: spec.kind,
                service: spec.target.service,
                env: spec.target.env,
                from: policy.from,
                distinctGroups: policy.distinctGroups,
                ...(remindAt === undefined ? {} : { remindAt }),
                ...(commitAuthors && authors ? { authors } : {}),
              });
              if (created && freeze !== undefined)
                await recordBreakGlassRequest(deps, jobId, spec, command.user, freeze, now());
            } else {
              await ops.enqueueData(jobId, data);
            }
            jobIds.push(jobId);
          }
          return { ok: true, jobIds, traceId };
        }
        // The hot path: one queue write. The job is the durable record of the accepted command; its
        // audit entry ("job.queued") is derived from it off this path.
        const enqueued = await ops.enqueue(result.jobs, command, traceId, result.skipped);
        if (log.isLevelEnabled("debug"))
          log.debug({ ...context(), jobs: enqueued.map((e) => e.jobId) }, "command accepted");
        deps.metrics?.countCommand(routed.name, "accepted");
        return { ok: true, jobIds: enqueued.map((e) => e.jobId), traceId };
      }
      await audit
        .append("command.answered", { ...base(), name: routed.name })
        .catch((error: unknown) => log.warn({ ...context(), err: error }, "audit write failed"));
      deps.metrics?.countCommand(routed.name, "answered");
      return reply;
    } catch (caught) {
      const error = toShipbotError(caught);
      deps.metrics?.countCommand(
        name ?? toCommandWord(command.text),
        error.code === "forbidden" ? "denied" : error.code === "internal" ? "failed" : "refused",
      );
      if (error.code === "internal") log.error({ ...context(), err: caught }, "command failed");
      else log.info({ ...context(), code: error.code, reason: error.message }, "command refused");
      await audit
        .append(error.code === "forbidden" ? "command.denied" : "command.refused", {
          ...base(),
          code: error.code,
          reason: error.message,
        })
        .catch((auditError: unknown) => log.warn({ ...context(), err: auditError }, "audit write failed"));
      return { ok: false, card: errorCard(error), jobIds: [], error, traceId };
    }
  }

  if (!deps.tracer) return handleCommand;
  const tracer = deps.tracer;
  return (command) =>
    inSpan(
      tracer,
      "shipbot.command",
      { "chat.platform": command.conversation.platform, "shipbot.user": command.user.id },
      () => handleCommand(command),
    );
}
