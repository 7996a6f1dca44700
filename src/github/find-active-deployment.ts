import type { GitHubClient } from "./create-github-client.ts";
import { formatRepo, type RepoRef } from "./repo-ref.ts";
import { toGitHubError } from "./to-github-error.ts";

export interface ActiveDeployment {
  id: number;
  sha: string;
  ref: string;
  createdAt: string;
}

/**
 * The newest deployment of `environment` whose latest status is success: what GitHub shows as deployed,
 * and the base for an approval preview (compareCommits). Looks at the newest `scan` deployments only.
 */
export async function findActiveDeployment(
  github: GitHubClient,
  repo: RepoRef,
  environment: string,
  options: { scan?: number; signal?: AbortSignal } = {},
): Promise<ActiveDeployment | undefined> {
  const request = options.signal === undefined ? {} : { request: { signal: options.signal } };
  try {
    const { data: deployments } = await github.rest.repos.listDeployments({
      ...repo,
      environment,
      per_page: Math.min(options.scan ?? 10, 100),
      ...request,
    });
    for (const d of deployments) {
      const { data: statuses } = await github.rest.repos.listDeploymentStatuses({
        ...repo,
        deployment_id: d.id,
        per_page: 1,
        ...request,
      });
      if (statuses[0]?.state === "success")
        return { id: d.id, sha: d.sha, ref: d.ref, createdAt: d.created_at };
    }
    return undefined;
  } catch (error) {
    throw toGitHubError(error, { action: `read deployments of ${environment}`, repo: formatRepo(repo) });
  }
}
