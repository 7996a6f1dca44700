import { ShipbotError } from "../core/errors.ts";

/** A GitHub repository as the REST API addresses it. */
export interface RepoRef {
  owner: string;
  repo: string;
}

const ownerPattern = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const namePattern = /^[A-Za-z0-9._-]{1,100}$/;

/** Parses `owner/name` (as written in shipbot.yaml); anything else is a usage error naming the value. */
export function toRepoRef(fullName: string): RepoRef {
  const [owner, repo, ...rest] = fullName.split("/");
  if (
    owner === undefined ||
    repo === undefined ||
    rest.length > 0 ||
    !ownerPattern.test(owner) ||
    !namePattern.test(repo) ||
    repo === "." ||
    repo === ".."
  ) {
    throw new ShipbotError(
      "usage",
      `\`${fullName.slice(0, 80)}\` is not a GitHub repository; write owner/name`,
      {
        retryable: false,
      },
    );
  }
  return { owner, repo };
}

export function formatRepo(repo: RepoRef): string {
  return `${repo.owner}/${repo.repo}`;
}
