import { ShipbotError } from "../core/errors.ts";

/** What a template can draw from: the resolved commit and how the person named it. */
export interface ImageTagSource {
  /** The ref as given, e.g. `main`, `v1.42.0`, `3f2c1ab`. */
  ref: string;
  kind: "branch" | "tag" | "sha";
  sha: string;
}

export const imageTagPlaceholders = ["sha7", "sha", "tag", "ref"] as const;

/** A template is literal tag characters and `{sha7}`, `{sha}`, `{tag}`, `{ref}`; usable in a config schema. */
export const imageTagTemplatePattern = /^(?:[A-Za-z0-9_.-]|\{(?:sha7|sha|tag|ref)\})+$/;

/** Docker's rule for a tag. */
const dockerTag = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/**
 * Renders a per-service image tag template, e.g. `{sha7}` → `3f2c1ab`, `{tag}` → `v1.42.0`,
 * `main-{sha7}` → `main-3f2c1ab`. `{ref}` is the ref with characters a tag cannot hold turned into `-`
 * (`release/2.1` → `release-2.1`). `{tag}` needs the ref to be a tag: a service that publishes images only
 * for tags cannot be deployed from a branch.
 */
export function toImageTag(template: string, source: ImageTagSource): string {
  if (!imageTagTemplatePattern.test(template)) {
    throw new ShipbotError(
      "usage",
      `image tag template \`${template.slice(0, 60)}\` may hold only tag characters and {sha7}, {sha}, {tag}, {ref}`,
      { retryable: false },
    );
  }
  if (template.includes("{tag}") && source.kind !== "tag") {
    throw new ShipbotError(
      "usage",
      `images of this service are tagged by git tag: deploy a tag such as v1.2.3, not ${source.kind} \`${source.ref}\``,
      { retryable: false },
    );
  }
  const values: Record<(typeof imageTagPlaceholders)[number], string> = {
    sha7: source.sha.slice(0, 7),
    sha: source.sha,
    tag: source.ref.replace(/^(?:refs\/)?tags\//, ""),
    ref: source.ref.replace(/^refs\/(?:heads|tags)\//, "").replace(/[^A-Za-z0-9_.-]/g, "-"),
  };
  const tag = template.replace(/\{(sha7|sha|tag|ref)\}/g, (_, name: keyof typeof values) => values[name]);
  if (!dockerTag.test(tag)) {
    throw new ShipbotError(
      "usage",
      `\`${source.ref}\` gives the image tag \`${tag.slice(0, 60)}\`, which is not a valid image tag (letters, digits, _ . -; at most 128; not starting with . or -)`,
      { retryable: false },
    );
  }
  return tag;
}
