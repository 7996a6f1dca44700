export { assertSafeRef, maxRefLength } from "./assert-safe-ref.ts";
export {
  type CheckRequiredOptions,
  type CheckResult,
  checkRequired,
  type RequiredChecksReport,
} from "./check-required.ts";
export { type CommitComparison, type CommitSummary, compareCommits } from "./compare-commits.ts";
export {
  createGitHubClient,
  type GitHubAuth,
  type GitHubClient,
  type GitHubClientOptions,
  type GitHubLog,
} from "./create-github-client.ts";
export { type ActiveDeployment, findActiveDeployment } from "./find-active-deployment.ts";
export { findDeploymentByImage } from "./find-deployment-by-image.ts";
export {
  type DeploymentRecord,
  recordDeployment,
  type StartDeploymentOptions,
  startDeployment,
} from "./record-deployment.ts";
export { formatRepo, type RepoRef, toRepoRef } from "./repo-ref.ts";
export { type ResolvedRef, type ResolveRefOptions, resolveRef } from "./resolve-ref.ts";
export type { CommitPerson } from "./to-commit-people.ts";
export { gitHubStatus, toGitHubError } from "./to-github-error.ts";
export { imageTagTemplatePattern, toImageTag } from "./to-image-tag.ts";
