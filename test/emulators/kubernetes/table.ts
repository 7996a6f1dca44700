/** Server-side printing (`Accept: ...;as=Table`), which kubectl asks for when printing columns for humans. */
import type { KubeObject } from "./cluster.ts";

interface Column {
  name: string;
  type: string;
  cell: (o: KubeObject, now: number) => string | number;
}

function age(o: KubeObject, now: number): string {
  const seconds = Math.max(0, Math.floor((now - Date.parse(o.metadata.creationTimestamp)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

const name: Column = { name: "Name", type: "string", cell: (o) => o.metadata.name };
const ageColumn: Column = { name: "Age", type: "string", cell: age };

const columns: Record<string, Column[]> = {
  deployments: [
    name,
    {
      name: "Ready",
      type: "string",
      cell: (o) => `${o.status?.readyReplicas ?? 0}/${o.spec?.replicas ?? 1}`,
    },
    { name: "Up-to-date", type: "integer", cell: (o) => o.status?.updatedReplicas ?? 0 },
    { name: "Available", type: "integer", cell: (o) => o.status?.availableReplicas ?? 0 },
    ageColumn,
  ],
  replicasets: [
    name,
    { name: "Desired", type: "integer", cell: (o) => o.spec?.replicas ?? 0 },
    { name: "Current", type: "integer", cell: (o) => o.status?.replicas ?? 0 },
    { name: "Ready", type: "integer", cell: (o) => o.status?.readyReplicas ?? 0 },
    ageColumn,
  ],
  namespaces: [name, { name: "Status", type: "string", cell: (o) => o.status?.phase ?? "" }, ageColumn],
};

export function wantsTable(accept: string | undefined): boolean {
  return accept?.includes("as=Table") ?? false;
}

export function toTable(resource: string, items: KubeObject[], resourceVersion: string): KubeObject {
  const cols = columns[resource] ?? [name, ageColumn];
  const now = Date.now();
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: { resourceVersion },
    columnDefinitions: cols.map((c) => ({
      name: c.name,
      type: c.type,
      format: c === name ? "name" : "",
      description: c.name,
      priority: 0,
    })),
    rows: items.map((o) => ({
      cells: cols.map((c) => c.cell(o, now)),
      object: {
        kind: "PartialObjectMetadata",
        apiVersion: "meta.k8s.io/v1",
        metadata: {
          name: o.metadata.name,
          ...(o.metadata.namespace === undefined ? {} : { namespace: o.metadata.namespace }),
          uid: o.metadata.uid,
          resourceVersion: o.metadata.resourceVersion,
          creationTimestamp: o.metadata.creationTimestamp,
        },
      },
    })),
  };
}
