/** Legacy (non-aggregated) discovery documents for the resources the emulator serves. */

const verbsFull = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

export const version = {
  major: "1",
  minor: "32",
  gitVersion: "v1.32.0-shipbot-emulator",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2025-01-01T00:00:00Z",
  goVersion: "go1.23.4",
  compiler: "gc",
  platform: "linux/amd64",
};

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

const appsGroup = {
  name: "apps",
  versions: [{ groupVersion: "apps/v1", version: "v1" }],
  preferredVersion: { groupVersion: "apps/v1", version: "v1" },
};

export const apiGroupList = { kind: "APIGroupList", apiVersion: "v1", groups: [appsGroup] };
export const appsGroupDoc = { kind: "APIGroup", apiVersion: "v1", ...appsGroup };

export const coreV1Resources = {
  kind: "APIResourceList",
  groupVersion: "v1",
  resources: [
    {
      name: "namespaces",
      singularName: "namespace",
      namespaced: false,
      kind: "Namespace",
      verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
      shortNames: ["ns"],
    },
  ],
};

export const appsV1Resources = {
  kind: "APIResourceList",
  apiVersion: "v1",
  groupVersion: "apps/v1",
  resources: [
    {
      name: "deployments",
      singularName: "deployment",
      namespaced: true,
      kind: "Deployment",
      verbs: verbsFull,
      shortNames: ["deploy"],
      categories: ["all"],
    },
    {
      name: "deployments/scale",
      singularName: "",
      namespaced: true,
      group: "autoscaling",
      version: "v1",
      kind: "Scale",
      verbs: ["get", "patch", "update"],
    },
    {
      name: "deployments/status",
      singularName: "",
      namespaced: true,
      kind: "Deployment",
      verbs: ["get", "patch", "update"],
    },
    {
      name: "replicasets",
      singularName: "replicaset",
      namespaced: true,
      kind: "ReplicaSet",
      verbs: verbsFull,
      shortNames: ["rs"],
      categories: ["all"],
    },
  ],
};
