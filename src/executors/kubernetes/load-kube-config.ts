import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { isShipbotError, ShipbotError } from "../../core/errors.ts";

export interface KubeConfigSource {
  /** KUBECONFIG's value: one path or a list joined like $PATH (the first file's current context wins). */
  kubeconfigPath?: string | undefined;
  /**
   * The filesystem root the pod's service account is mounted under (default `/`, so the standard
   * /var/run/secrets/kubernetes.io/serviceaccount); tests mount one elsewhere.
   */
  serviceAccountRoot?: string;
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
  // client-node puts the root in front of the standard path as it is: no trailing slash.
  const root = (source.serviceAccountRoot ?? "").replace(/\/+$/, "");
  if (first === undefined) {
    if (!existsSync(join(`${root}${defaultServiceAccountDir}`, "token"))) {
      throw new ShipbotError(
        "internal",
        "no Kubernetes configuration: set KUBECONFIG to a kubeconfig file, or run shipbot in a pod with a service account",
        { retryable: false },
      );
    }
  }
  try {
    if (first === undefined) {
      kubeConfig.loadFromCluster(root);
      // Kubernetes sets these in every pod; without them client-node would aim at https://undefined.
      if (/undefined/.test(kubeConfig.getCurrentCluster()?.server ?? "undefined")) {
        throw new ShipbotError(
          "internal",
          "found a service account but not the API server: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (Kubernetes sets them in every pod; elsewhere set KUBECONFIG)",
          { retryable: false },
        );
      }
    } else {
      kubeConfig.loadFromFile(first);
      for (const file of rest) {
        const extra = new KubeConfig();
        extra.loadFromFile(file);
        kubeConfig.mergeConfig(extra, true);
      }
    }
  } catch (error) {
    if (isShipbotError(error)) throw error;
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
