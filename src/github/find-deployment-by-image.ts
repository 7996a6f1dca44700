import type { GitHubClient } from "./create-github-client.ts";
import { formatRepo, type RepoRef } from "./repo-ref.ts";
import { toGitHubError } from "./to-github-error.ts";

/**
 * The newest deployment of `environment` whose payload names `image` (shipbot records `payload.image`).
 * A rollback knows the image it returns to, not the commit: this finds the commit to record it against.
 */
export async function findDeploymentByImage(
  github: GitHubClient,
  repo: RepoRef,
  environment: string,
  image: string,
  options: { scan?: number; signal?: AbortSignal } = {},
): Promise<{ id: number; sha: string; ref: string } | undefined> {
  const request = options.signal === undefined ? {} : { request: { signal: options.signal } };
  try {
    const { data } = await github.rest.repos.listDeployments({
      ...repo,
      environment,
      per_page: Math.min(options.scan ?? 50, 100),
      ...request,
    });
    const found = data.find(
      (d) =>
        typeof d.payload === "object" &&
        d.payload !== null &&
        (d.payload as { image?: unknown }).image === image,
    );
    return found && { id: found.id, sha: found.sha, ref: found.ref };
  } catch (error) {
    throw toGitHubError(error, { action: `read deployments of ${environment}`, repo: formatRepo(repo) });
  }
}
