import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { ShipbotError } from "../../core/errors.ts";

export interface KubeConfigSource {
  /** KUBECONFIG's value: one path or a list joined like $PATH (the first file's current context wins). */
  kubeconfigPath?: string | undefined;
  /** Where the pod's service account is mounted; the default is the standard in-cluster path. */
  serviceAccountDir?: string;
}

const defaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * Loads the Kubernetes client configuration from a kubeconfig path (KUBECONFIG), or else from the in-cluster
 * service account. The caller passes the path in: this module never reads the environment itself.
 */
export function loadKubeConfig(source: KubeConfigSource = {}): KubeConfig {
  const kubeConfig = new KubeConfig();
  const files = (source.kubeconfigPath ?? "").split(delimiter).filter((file) => file !== "");
  const origin = files.length > 0 ? files.join(delimiter) : "the in-cluster service account";
  const [first, ...rest] = files;
  if (first === undefined) {
    const dir = source.serviceAccountDir ?? defaultServiceAccountDir;
    if (!existsSync(join(dir, "token"))) {
      throw new ShipbotError(
        "internal",
        "no Kubernetes configuration: set KUBECONFIG to a kubeconfig file, or run shipbot in a pod with a service account",
        { retryable: false },
      );
    }
  }
  try {
    if (first === undefined) {
      kubeConfig.loadFromCluster();
    } else {
      kubeConfig.loadFromFile(first);
      for (const file of rest) {
        const extra = new KubeConfig();
        extra.loadFromFile(file);
        kubeConfig.mergeConfig(extra, true);
      }
    }
  } catch (error) {
    throw new ShipbotError("internal", `could not load the Kubernetes configuration from ${origin}`, {
      cause: error,
      retryable: false,
    });
  }
  if (!kubeConfig.getCurrentCluster()) {
    throw new ShipbotError(
      "internal",
      `the Kubernetes configuration from ${origin} has no current context with a cluster: set current-context`,
      { retryable: false },
    );
  }
  return kubeConfig;
}
