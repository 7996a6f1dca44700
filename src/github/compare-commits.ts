import { assertSafeRef } from "./assert-safe-ref.ts";
import type { GitHubClient } from "./create-github-client.ts";
import { formatRepo, type RepoRef } from "./repo-ref.ts";
import { type CommitPerson, firstLine, toCommitPeople, uniquePeople } from "./to-commit-people.ts";
import { toGitHubError } from "./to-github-error.ts";

export interface CommitSummary {
  sha: string;
  shortSha: string;
  title: string;
  authors: CommitPerson[];
}

export interface CommitComparison {
  /** `ahead`: a normal deploy; `behind`: going back (a rollback); `diverged`: a different line of history. */
  status: "ahead" | "behind" | "diverged" | "identical";
  /** Commits the new sha adds. */
  aheadBy: number;
  /** Commits the deployed sha has that the new one lacks. */
  behindBy: number;
  /** The newest `limit` of the added commits, oldest first. */
  commits: CommitSummary[];
  /** Authors and co-authors of every listed commit. */
  authors: CommitPerson[];
  /** False when GitHub listed fewer commits than the change has (over 250): `authors` misses some. */
  authorsComplete: boolean;
  /** True when GitHub or `limit` cut the list; aheadBy still counts them all. */
  truncated: boolean;
  url: string;
}

/**
 * What deploying `head` over the deployed `base` brings: commit count, authors, first lines, for the
 * approval preview. GitHub embeds at most 250 commits; authors are drawn from those.
 */
export async function compareCommits(
  github: GitHubClient,
  repo: RepoRef,
  base: string,
  head: string,
  options: { limit?: number; signal?: AbortSignal } = {},
): Promise<CommitComparison> {
  assertSafeRef(base);
  assertSafeRef(head);
  const limit = options.limit ?? 20;
  const request = options.signal === undefined ? {} : { request: { signal: options.signal } };
  let data: Awaited<ReturnType<GitHubClient["rest"]["repos"]["compareCommitsWithBasehead"]>>["data"];
  try {
    ({ data } = await github.rest.repos.compareCommitsWithBasehead({
      ...repo,
      basehead: `${base}...${head}`,
      ...request,
    }));
  } catch (error) {
    throw toGitHubError(error, {
      action: `compare ${base.slice(0, 12)} with ${head.slice(0, 12)}`,
      repo: formatRepo(repo),
    });
  }
  const all = data.commits.map(
    (c): CommitSummary => ({
      sha: c.sha,
      shortSha: c.sha.slice(0, 7),
      title: firstLine(c.commit.message),
      authors: toCommitPeople(c),
    }),
  );
  const commits = all.slice(Math.max(0, all.length - limit));
  return {
    status: data.status,
    aheadBy: data.ahead_by,
    behindBy: data.behind_by,
    commits,
    authors: uniquePeople(all.flatMap((c) => c.authors)),
    authorsComplete: all.length >= data.ahead_by,
    truncated: commits.length < data.ahead_by,
    url: data.html_url,
  };
}
