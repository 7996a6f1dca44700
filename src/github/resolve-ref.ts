import { ShipbotError } from "../core/errors.ts";
import { assertSafeRef } from "./assert-safe-ref.ts";
import type { GitHubClient } from "./create-github-client.ts";
import { formatRepo, type RepoRef } from "./repo-ref.ts";
import { type CommitLike, type CommitPerson, firstLine, toCommitPeople } from "./to-commit-people.ts";
import { gitHubStatus, toGitHubError } from "./to-github-error.ts";
import { toImageTag } from "./to-image-tag.ts";

export interface ResolveRefOptions {
  /** Per-service image tag template (see toImageTag); default `{sha7}`. */
  imageTagTemplate?: string;
  signal?: AbortSignal;
}

/** A ref pinned to one commit, with what approvals and cards need to know about it. */
export interface ResolvedRef {
  /** The ref as given. */
  ref: string;
  kind: "branch" | "tag" | "sha";
  sha: string;
  shortSha: string;
  /** When the commit landed (committer date), ISO 8601. */
  committedAt: string;
  title: string;
  /** Author and co-authors of the commit. */
  authors: CommitPerson[];
  imageTag: string;
}

const hexRef = /^[0-9a-f]{4,40}$/i;

/**
 * Resolves a branch, tag, full or abbreviated sha to one commit. The ref is validated before any request;
 * an unknown ref is a not_found error that names it and the repository.
 */
export async function resolveRef(
  github: GitHubClient,
  repo: RepoRef,
  ref: string,
  options: ResolveRefOptions = {},
): Promise<ResolvedRef> {
  assertSafeRef(ref);
  const full = formatRepo(repo);
  const request = options.signal === undefined ? {} : { request: { signal: options.signal } };
  let commit: CommitLike;
  try {
    ({ data: commit } = await github.rest.repos.getCommit({ ...repo, ref, ...request }));
  } catch (error) {
    const status = gitHubStatus(error);
    // GitHub answers an unknown ref with 422 "No commit found for SHA"; 404 when the repository is unseen.
    if (status === 422) {
      throw new ShipbotError("not_found", `no branch, tag or commit \`${ref}\` in ${full}`, {
        cause: error,
        retryable: false,
      });
    }
    throw toGitHubError(error, { action: `read ref ${ref}`, repo: full });
  }

  let kind: ResolvedRef["kind"];
  if (/^(?:refs\/)?heads\//.test(ref)) kind = "branch";
  else if (/^(?:refs\/)?tags\//.test(ref)) kind = "tag";
  else if (hexRef.test(ref) && commit.sha.startsWith(ref.toLowerCase())) kind = "sha";
  else kind = (await isTag(github, repo, ref, request)) ? "tag" : "branch";

  return {
    ref,
    kind,
    sha: commit.sha,
    shortSha: commit.sha.slice(0, 7),
    committedAt: commit.commit.committer?.date ?? commit.commit.author?.date ?? "",
    title: firstLine(commit.commit.message),
    authors: toCommitPeople(commit),
    imageTag: toImageTag(options.imageTagTemplate ?? "{sha7}", { ref, kind, sha: commit.sha }),
  };
}

/** Tells a tag from a branch of the same spelling; `getCommit` alone does not say which it found. */
async function isTag(
  github: GitHubClient,
  repo: RepoRef,
  name: string,
  request: { request?: { signal: AbortSignal } },
): Promise<boolean> {
  try {
    await github.rest.git.getRef({ ...repo, ref: `tags/${name}`, ...request });
    return true;
  } catch (error) {
    if (gitHubStatus(error) === 404) return false;
    throw toGitHubError(error, { action: `read tag ${name}`, repo: formatRepo(repo) });
  }
}
