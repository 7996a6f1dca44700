import { toShipbotError } from "../core/errors.ts";
import type { GitHubClient } from "./create-github-client.ts";
import { formatRepo, type RepoRef } from "./repo-ref.ts";
import { toGitHubError } from "./to-github-error.ts";

export interface StartDeploymentOptions {
  repo: RepoRef;
  /** The resolved commit; GitHub's deployment `ref` is set to it so the record names exactly what ran. */
  sha: string;
  /** The ref as the person typed it (branch, tag), kept in the payload and description. */
  ref?: string;
  environment: string;
  /** The BullMQ job id: stored in the payload, and how a retried job finds its deployment again. */
  jobId: string;
  description?: string;
  /** Link to the chat thread, shown by GitHub next to each status. */
  logUrl?: string;
  environmentUrl?: string;
  /** A short-lived environment (review apps); GitHub never auto-inactivates it. */
  transient?: boolean;
  /** Default: GitHub's rule (true when the environment is named production). */
  production?: boolean;
  /** Extra payload fields, e.g. the image. */
  payload?: Record<string, unknown>;
  /**
   * A rollback: when it succeeds, every other deployment still active in the environment is marked
   * inactive explicitly, not only those GitHub auto-inactivates.
   */
  rollback?: boolean;
  signal?: AbortSignal;
}

export interface DeploymentRecord {
  id: number;
  /** True when a deployment of this job already existed (a retried job) and is reused. */
  resumed: boolean;
  /** Marks the deployment successful; later calls to succeed or fail do nothing. */
  succeed(options?: { environmentUrl?: string; description?: string }): Promise<void>;
  /** Marks the deployment failed with `reason` (GitHub keeps 140 characters of it). */
  fail(reason: string): Promise<void>;
}

/** GitHub rejects descriptions over 140 characters. */
function clip(text: string): string {
  return text.length > 140 ? `${text.slice(0, 139)}…` : text;
}

function payloadJobId(payload: unknown): string | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  const shipbot = (payload as { shipbot?: unknown }).shipbot;
  if (typeof shipbot !== "object" || shipbot === null) return undefined;
  const jobId = (shipbot as { jobId?: unknown }).jobId;
  return typeof jobId === "string" ? jobId : undefined;
}

/**
 * Records a GitHub Deployment for a job and moves it to in_progress. The caller must end it with
 * `succeed()` or `fail()`; `recordDeployment` does that around a function. `auto_merge` is off (a rollback
 * deploys an older commit on purpose) and `required_contexts` is empty because shipbot checks the
 * required checks itself, with its own message (checkRequired).
 */
export async function startDeployment(
  github: GitHubClient,
  options: StartDeploymentOptions,
): Promise<DeploymentRecord> {
  const { repo, environment, jobId } = options;
  const full = formatRepo(repo);
  const request = options.signal === undefined ? {} : { request: { signal: options.signal } };
  // Only the opening requests carry the job's signal. It fires exactly when a job ends badly (rollout
  // deadline, shutdown, lost lock): the closing writes (success, failure, inactive) sent with it would
  // be aborted before they left and the record would stay in_progress on GitHub for good. The client's
  // per-request timeout still bounds them.
  const fail = (error: unknown, action: string) => toGitHubError(error, { action, repo: full });

  let id: number | undefined;
  try {
    const { data: existing } = await github.rest.repos.listDeployments({
      ...repo,
      sha: options.sha,
      environment,
      per_page: 30,
      ...request,
    });
    id = existing.find((d) => payloadJobId(d.payload) === jobId)?.id;
  } catch (error) {
    throw fail(error, `list deployments of ${environment}`);
  }
  const resumed = id !== undefined;
  if (id === undefined) {
    try {
      const { data } = await github.rest.repos.createDeployment({
        ...repo,
        ref: options.sha,
        environment,
        task: "deploy",
        auto_merge: false,
        required_contexts: [],
        payload: { ...options.payload, shipbot: { jobId, ref: options.ref ?? options.sha } },
        description: clip(
          options.description ??
            `${options.rollback ? "rollback" : "deploy"} ${options.ref ?? options.sha.slice(0, 7)} by shipbot job ${jobId}`,
        ),
        ...(options.transient === undefined ? {} : { transient_environment: options.transient }),
        ...(options.production === undefined ? {} : { production_environment: options.production }),
        ...request,
      });
      // 202 means GitHub merged the default branch instead of deploying; auto_merge: false rules it out.
      if (!("id" in data)) throw new Error(`GitHub created no deployment: ${data.message ?? "202"}`);
      id = data.id;
    } catch (error) {
      throw fail(error, `create a deployment to ${environment}`);
    }
  }
  const deploymentId = id;

  const post = async (
    state: "in_progress" | "success" | "failure" | "inactive",
    extra: { description?: string; environmentUrl?: string; deploymentId?: number } = {},
  ) => {
    try {
      await github.rest.repos.createDeploymentStatus({
        ...repo,
        deployment_id: extra.deploymentId ?? deploymentId,
        state,
        ...(options.logUrl === undefined || state === "inactive" ? {} : { log_url: options.logUrl }),
        ...(extra.environmentUrl === undefined ? {} : { environment_url: extra.environmentUrl }),
        ...(extra.description === undefined ? {} : { description: clip(extra.description) }),
        ...(state === "in_progress" ? request : {}),
      });
    } catch (error) {
      throw fail(error, `mark deployment ${extra.deploymentId ?? deploymentId} ${state}`);
    }
  };

  /** Marks every other deployment of the environment whose newest status is success as inactive. */
  const inactivateOthers = async () => {
    let others: Array<{ id: number }>;
    try {
      ({ data: others } = await github.rest.repos.listDeployments({
        ...repo,
        environment,
        per_page: 10,
      }));
    } catch (error) {
      throw fail(error, `list deployments of ${environment}`);
    }
    for (const other of others) {
      if (other.id === deploymentId) continue;
      let latest: string | undefined;
      try {
        const { data } = await github.rest.repos.listDeploymentStatuses({
          ...repo,
          deployment_id: other.id,
          per_page: 1,
        });
        latest = data[0]?.state;
      } catch (error) {
        throw fail(error, `read deployment ${other.id}`);
      }
      if (latest === "success") await post("inactive", { deploymentId: other.id });
    }
  };

  await post(
    "in_progress",
    options.environmentUrl === undefined ? {} : { environmentUrl: options.environmentUrl },
  );
  let settled = false;
  return {
    id: deploymentId,
    resumed,
    async succeed(result = {}) {
      if (settled) return;
      settled = true;
      const environmentUrl = result.environmentUrl ?? options.environmentUrl;
      await post("success", {
        ...(result.description === undefined ? {} : { description: result.description }),
        ...(environmentUrl === undefined ? {} : { environmentUrl }),
      });
      if (options.rollback) await inactivateOthers();
    },
    async fail(reason) {
      if (settled) return;
      settled = true;
      await post("failure", { description: reason });
    },
  };
}

export interface DeploymentLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

/**
 * Runs `work` inside a GitHub Deployment: in_progress before, success after, failure (with the error's
 * message, which is chat-safe) when it throws, so a record is never left in_progress by shipbot. A final
 * status GitHub cannot take (it is down after the retries) is logged, not thrown: the work's own outcome
 * is what the caller gets.
 */
export async function recordDeployment<T>(
  github: GitHubClient,
  options: StartDeploymentOptions & { log?: DeploymentLog },
  work: (deployment: DeploymentRecord) => Promise<T>,
): Promise<T> {
  const deployment = await startDeployment(github, options);
  let result: T;
  try {
    result = await work(deployment);
  } catch (error) {
    // The normalised message is the chat-safe one; internals never reach GitHub either.
    const reason = toShipbotError(error).message;
    try {
      await deployment.fail(reason);
    } catch (statusError) {
      options.log?.warn(
        { err: statusError, deploymentId: deployment.id },
        "could not mark the GitHub deployment failed",
      );
    }
    throw error;
  }
  try {
    await deployment.succeed();
  } catch (statusError) {
    // The work is done; a record GitHub could not take must not turn a finished deploy into a failed job.
    options.log?.warn(
      { err: statusError, deploymentId: deployment.id },
      "could not mark the GitHub deployment successful",
    );
  }
  return result;
}
