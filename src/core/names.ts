import { z } from "zod";

/** RFC 1123 label, as Kubernetes requires for namespaces and (in practice) deployment names. */
const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1123 subdomain, the rule for Deployment and container names. */
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Docker/OCI tag grammar. */
const imageTag = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** Repository part of an image reference (registry host with optional port, then lowercase path). */
const imageRepository = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;

export const kubeLabelName = z
  .string()
  .max(63, "must be at most 63 characters")
  .regex(dnsLabel, "must be lowercase letters, digits and '-', starting and ending with a letter or digit");

export const kubeResourceName = z
  .string()
  .max(253, "must be at most 253 characters")
  .regex(
    dnsSubdomain,
    "must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
  );

export const imageTagSchema = z
  .string()
  .regex(
    imageTag,
    "must be an image tag: letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'",
  );

export const imageRepositorySchema = z
  .string()
  .max(255)
  .regex(imageRepository, "must be an image repository such as ghcr.io/acme/api (no tag)");

/** A short name for a service or environment as typed in chat. */
export const shortName = kubeLabelName;

/** Whether `text` passes `shortName`, without a schema parse (for hot loops; failures still go through zod). */
export function isShortName(text: string): boolean {
  return text.length <= 63 && dnsLabel.test(text);
}
