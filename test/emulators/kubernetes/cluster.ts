/**
 * The emulated cluster state (namespaces, Deployments, ReplicaSets), a resourceVersion-ordered event log for
 * watches, and a deployment controller that moves one replica per step the way the real one rolls out.
 */
import { createHash, randomUUID } from "node:crypto";
import { ApiError, conflict, invalid, notFound } from "./errors.ts";
import { clone, jsonEqual } from "./patch.ts";

// biome-ignore lint/suspicious/noExplicitAny: API objects are free-form JSON that patches reshape at will
export type KubeObject = Record<string, any>;

export type Resource = "deployments" | "replicasets" | "namespaces";
export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface ClusterEvent {
  rv: number;
  type: EventType;
  resource: Resource;
  object: KubeObject;
}

export interface SeedDeployment {
  namespace: string;
  name: string;
  /** Container name; defaults to the deployment name. */
  container?: string;
  image: string;
  /** Defaults to 2. */
  replicas?: number;
  /** Defaults to 600. */
  progressDeadlineSeconds?: number;
  labels?: Record<string, string>;
  /** Images this Deployment ran before, oldest first: each leaves a scaled-down ReplicaSet with its revision. */
  previousImages?: string[];
}

export interface ClusterOptions {
  /** Milliseconds per emulated second, for progressDeadlineSeconds. */
  msPerSecond: number;
  now?: () => number;
}

const revisionKey = "deployment.kubernetes.io/revision";
const revisionHistoryKey = "deployment.kubernetes.io/revision-history";
const hashLabel = "pod-template-hash";
/** Deployment annotations the controller never copies onto its ReplicaSets (deployment util's skip list). */
const notCopiedToReplicaSet = new Set([
  "kubectl.kubernetes.io/last-applied-configuration",
  revisionKey,
  revisionHistoryKey,
  "deployment.kubernetes.io/desired-replicas",
  "deployment.kubernetes.io/max-replicas",
  "deprecated.deployment.rollback.to",
]);
const eventLogLimit = 5000;

interface PodCounts {
  replicas: number;
  available: number;
}

interface DeploymentState {
  object: KubeObject;
  /** Emulated clock reading when the rollout last made progress; drives ProgressDeadlineExceeded. */
  lastProgressAt: number;
}

export function timestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Same alphabet as the real pod-template-hash (no vowels, so no accidental words). */
function templateHash(template: unknown): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  const digest = createHash("sha256").update(canonical(template)).digest();
  let out = "";
  for (let i = 0; i < 10; i++) out += alphabet[(digest[i] ?? 0) % alphabet.length];
  return out;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The pod template without the controller-added hash label, as `equalIgnoreHash` compares them. */
export function templateWithoutHash(template: KubeObject | undefined): KubeObject {
  const copy = clone(template ?? {});
  const labels = copy.metadata?.labels;
  if (labels && typeof labels === "object") {
    delete labels[hashLabel];
    if (Object.keys(labels).length === 0) delete copy.metadata.labels;
  }
  return copy;
}

function revisionOf(object: KubeObject): number {
  const value = Number(object.metadata?.annotations?.[revisionKey] ?? 0);
  return Number.isInteger(value) ? value : 0;
}

/** maxSurge/maxUnavailable accept an int or a percentage; surge rounds up, unavailable rounds down. */
function resolveIntOrPercent(value: unknown, total: number, roundUp: boolean, fallback: string): number {
  const raw = value ?? fallback;
  if (typeof raw === "number") return raw;
  const match = /^(\d+)%$/.exec(String(raw));
  if (!match) return Number(raw) || 0;
  const exact = (Number(match[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

function rollingLimits(deployment: KubeObject, desired: number): { surge: number; unavailable: number } {
  const rolling = deployment.spec?.strategy?.rollingUpdate ?? {};
  const surge = resolveIntOrPercent(rolling.maxSurge, desired, true, "25%");
  let unavailable = resolveIntOrPercent(rolling.maxUnavailable, desired, false, "25%");
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return { surge, unavailable: Math.min(unavailable, desired) };
}

/** An image whose tag starts with "fail" never gets ready: the emulator's way to exercise a stuck rollout. */
function isHealthy(template: KubeObject): boolean {
  const containers: KubeObject[] = template.spec?.containers ?? [];
  return containers.every((c) => {
    const image = String(c.image ?? "");
    const tag = image.includes(":") ? (image.split(":").at(-1) ?? "") : "";
    return !tag.startsWith("fail");
  });
}

export function matchesLabelSelector(labels: Record<string, string> | undefined, selector: string): boolean {
  const have = labels ?? {};
  // Split on commas outside parentheses: "a in (x,y),b=c".
  const terms = selector.split(/,(?![^(]*\))/).map((t) => t.trim());
  return terms.every((term) => {
    if (term === "") return true;
    let m = /^([^!=\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (m) {
      const [, k = "", op, v = ""] = m;
      return op === "!=" ? have[k] !== v : have[k] === v;
    }
    m = /^(\S+)\s+(in|notin)\s+\((.*)\)$/.exec(term);
    if (m) {
      const [, k = "", op, list = ""] = m;
      const values = list.split(",").map((v) => v.trim());
      const value = have[k];
      const inside = value !== undefined && values.includes(value);
      return op === "in" ? inside : !inside;
    }
    if (term.startsWith("!")) return !(term.slice(1) in have);
    return term in have;
  });
}

export function matchesFieldSelector(object: KubeObject, selector: string): boolean {
  return selector
    .split(",")
    .filter((t) => t.trim() !== "")
    .every((term) => {
      const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(term.trim());
      if (!m) throw new ApiError(400, `invalid field selector "${term}"`);
      const [, field = "", op, value] = m;
      const actual =
        field === "metadata.name"
          ? object.metadata?.name
          : field === "metadata.namespace"
            ? object.metadata?.namespace
            : undefined;
      if (field !== "metadata.name" && field !== "metadata.namespace") {
        throw new ApiError(400, `field label not supported: ${field}`);
      }
      return op === "!=" ? actual !== value : actual === value;
    });
}

function selectorString(selector: KubeObject | undefined): string {
  return Object.entries(selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

export class Cluster {
  readonly namespaces = new Map<string, KubeObject>();
  private readonly deployments = new Map<string, DeploymentState>();
  private readonly replicaSets = new Map<string, KubeObject>();
  private readonly events: ClusterEvent[] = [];
  private readonly listeners = new Set<(event: ClusterEvent) => void>();
  private readonly writeCounts = new Map<string, number>();
  private readonly msPerSecond: number;
  private readonly now: () => number;
  private revision = 1;

  constructor(options: ClusterOptions) {
    this.msPerSecond = options.msPerSecond;
    this.now = options.now ?? Date.now;
  }

  get resourceVersion(): string {
    return String(this.revision);
  }

  /** The oldest resourceVersion a watch can still resume from. */
  get oldestResumable(): number {
    return (this.events[0]?.rv ?? this.revision + 1) - 1;
  }

  subscribe(listener: (event: ClusterEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  eventsSince(rv: number): ClusterEvent[] {
    return this.events.filter((e) => e.rv > rv);
  }

  recordWrite(namespace: string, name: string): void {
    const k = key(namespace, name);
    this.writeCounts.set(k, (this.writeCounts.get(k) ?? 0) + 1);
  }

  writes(namespace: string, name: string): number {
    return this.writeCounts.get(key(namespace, name)) ?? 0;
  }

  private commit(resource: Resource, type: EventType, object: KubeObject): void {
    this.revision += 1;
    object.metadata.resourceVersion = String(this.revision);
    const event: ClusterEvent = { rv: this.revision, type, resource, object: clone(object) };
    this.events.push(event);
    if (this.events.length > eventLogLimit) this.events.shift();
    for (const listener of this.listeners) listener(event);
  }

  private ensureNamespace(name: string): void {
    if (this.namespaces.has(name)) return;
    const ns: KubeObject = {
      kind: "Namespace",
      apiVersion: "v1",
      metadata: {
        name,
        uid: randomUUID(),
        creationTimestamp: timestamp(this.now()),
        labels: { "kubernetes.io/metadata.name": name },
      },
      spec: { finalizers: ["kubernetes"] },
      status: { phase: "Active" },
    };
    this.namespaces.set(name, ns);
    this.commit("namespaces", "ADDED", ns);
  }

  /** Adds a Deployment that has already rolled out (all replicas available), after any earlier images. */
  seed(seed: SeedDeployment): void {
    this.ensureNamespace(seed.namespace);
    const replicas = seed.replicas ?? 2;
    const selectorLabels = { app: seed.name };
    const deployment: KubeObject = {
      kind: "Deployment",
      apiVersion: "apps/v1",
      metadata: {
        name: seed.name,
        namespace: seed.namespace,
        uid: randomUUID(),
        generation: 1,
        creationTimestamp: timestamp(this.now()),
        labels: { ...selectorLabels, ...seed.labels },
        annotations: { [revisionKey]: "1" },
      },
      spec: {
        replicas,
        selector: { matchLabels: selectorLabels },
        template: {
          metadata: { labels: { ...selectorLabels } },
          spec: {
            containers: [
              {
                name: seed.container ?? seed.name,
                image: seed.image,
                imagePullPolicy: "IfNotPresent",
                resources: {},
                terminationMessagePath: "/dev/termination-log",
                terminationMessagePolicy: "File",
              },
            ],
            restartPolicy: "Always",
            terminationGracePeriodSeconds: 30,
            dnsPolicy: "ClusterFirst",
            securityContext: {},
            schedulerName: "default-scheduler",
          },
        },
        strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } },
        revisionHistoryLimit: 10,
        progressDeadlineSeconds: seed.progressDeadlineSeconds ?? 600,
      },
      status: { observedGeneration: 1 },
    };
    if (this.deployments.has(key(seed.namespace, seed.name))) {
      throw new Error(`deployment ${seed.namespace}/${seed.name} seeded twice`);
    }
    const state: DeploymentState = { object: deployment, lastProgressAt: this.now() };
    const history = seed.previousImages ?? [];
    const container = deployment.spec.template.spec.containers[0];
    history.forEach((image, index) => {
      container.image = image;
      this.createReplicaSet(deployment, index + 1, 0);
    });
    container.image = seed.image;
    const current = history.length + 1;
    deployment.metadata.annotations[revisionKey] = String(current);
    const rs = this.createReplicaSet(deployment, current, replicas);
    const at = timestamp(this.now());
    deployment.status = this.computeStatus(deployment, [rs], rs);
    deployment.status.conditions = [
      condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", at),
      condition(
        "Progressing",
        "True",
        "NewReplicaSetAvailable",
        `ReplicaSet "${rs.metadata.name}" has successfully progressed.`,
        at,
      ),
    ];
    this.deployments.set(key(seed.namespace, seed.name), state);
    this.commit("deployments", "ADDED", deployment);
  }

  getDeployment(namespace: string, name: string): KubeObject {
    const state = this.deployments.get(key(namespace, name));
    if (!state) throw notFound("deployments", "apps", name);
    return state.object;
  }

  findDeployment(namespace: string, name: string): KubeObject | undefined {
    return this.deployments.get(key(namespace, name))?.object;
  }

  listDeployments(namespace?: string): KubeObject[] {
    return [...this.deployments.values()]
      .map((s) => s.object)
      .filter((d) => namespace === undefined || d.metadata.namespace === namespace);
  }

  getReplicaSet(namespace: string, name: string): KubeObject {
    const rs = this.replicaSets.get(key(namespace, name));
    if (!rs) throw notFound("replicasets", "apps", name);
    return rs;
  }

  listReplicaSets(namespace?: string): KubeObject[] {
    return [...this.replicaSets.values()].filter(
      (rs) => namespace === undefined || rs.metadata.namespace === namespace,
    );
  }

  /**
   * Stores a new version of a Deployment computed from the current one (PATCH or PUT), with the API server's
   * rules: a resourceVersion in the result is a precondition, status and server-owned metadata are kept,
   * the selector is immutable, and any spec change bumps metadata.generation.
   */
  writeDeployment(namespace: string, name: string, compute: (current: KubeObject) => KubeObject): KubeObject {
    const state = this.deployments.get(key(namespace, name));
    if (!state) throw notFound("deployments", "apps", name);
    const current = state.object;
    // Typed decoding on the real server turns null fields into omitted zero values (kubectl's undo sends
    // `creationTimestamp: null` inside the template); dropping nulls keeps template comparison faithful.
    const next = dropNulls(compute(clone(current))) as KubeObject;
    const meta: KubeObject = typeof next.metadata === "object" && next.metadata !== null ? next.metadata : {};
    if (meta.name !== undefined && meta.name !== name) {
      throw new ApiError(
        400,
        `the name of the object (${meta.name}) does not match the name on the URL (${name})`,
      );
    }
    if (meta.namespace !== undefined && meta.namespace !== namespace) {
      throw new ApiError(
        400,
        `the namespace of the provided object does not match the namespace sent on the request`,
      );
    }
    const precondition = meta.resourceVersion;
    if (
      precondition !== undefined &&
      precondition !== "" &&
      precondition !== current.metadata.resourceVersion
    ) {
      throw conflict("deployments", "apps", name);
    }
    this.validateDeployment(name, current, next);
    const stored: KubeObject = {
      kind: "Deployment",
      apiVersion: "apps/v1",
      metadata: {
        ...meta,
        name,
        namespace,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        generation: current.metadata.generation,
        resourceVersion: current.metadata.resourceVersion,
      },
      spec: next.spec,
      status: current.status,
    };
    if (!jsonEqual(stored.spec, current.spec)) stored.metadata.generation = current.metadata.generation + 1;
    if (jsonEqual(stored, current)) return current;
    state.object = stored;
    this.commit("deployments", "MODIFIED", stored);
    return stored;
  }

  private validateDeployment(name: string, current: KubeObject, next: KubeObject): void {
    const causes: string[] = [];
    const spec: KubeObject = next.spec ?? {};
    if (!jsonEqual(spec.selector, current.spec.selector)) {
      causes.push(
        `spec.selector: Invalid value: ${JSON.stringify(spec.selector ?? null)}: field is immutable`,
      );
    }
    const replicas = spec.replicas;
    if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 0)) {
      causes.push(
        `spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
      );
    }
    const templateLabels: Record<string, string> = spec.template?.metadata?.labels ?? {};
    if (!matchesLabelSelector(templateLabels, selectorString(current.spec.selector))) {
      causes.push(
        "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
      );
    }
    const containers: unknown = spec.template?.spec?.containers;
    if (!Array.isArray(containers) || containers.length === 0) {
      causes.push("spec.template.spec.containers: Required value");
    } else {
      containers.forEach((c: KubeObject, i) => {
        if (typeof c?.name !== "string" || c.name === "") {
          causes.push(`spec.template.spec.containers[${i}].name: Required value`);
        }
        if (typeof c?.image !== "string" || c.image === "") {
          causes.push(`spec.template.spec.containers[${i}].image: Required value`);
        }
      });
    }
    if (causes.length > 0) throw invalid("Deployment", "apps", name, causes);
  }

  scaleOf(deployment: KubeObject): KubeObject {
    return {
      kind: "Scale",
      apiVersion: "autoscaling/v1",
      metadata: {
        name: deployment.metadata.name,
        namespace: deployment.metadata.namespace,
        uid: deployment.metadata.uid,
        resourceVersion: deployment.metadata.resourceVersion,
        creationTimestamp: deployment.metadata.creationTimestamp,
      },
      spec: { replicas: deployment.spec.replicas ?? 1 },
      status: {
        replicas: deployment.status?.replicas ?? 0,
        selector: selectorString(deployment.spec.selector),
      },
    };
  }

  /** Writes through the scale subresource: only spec.replicas may change. */
  writeScale(namespace: string, name: string, compute: (current: KubeObject) => KubeObject): KubeObject {
    const deployment = this.getDeployment(namespace, name);
    const next = compute(this.scaleOf(deployment));
    const precondition = next.metadata?.resourceVersion;
    if (
      precondition !== undefined &&
      precondition !== "" &&
      precondition !== deployment.metadata.resourceVersion
    ) {
      throw conflict("deployments", "apps", name);
    }
    const replicas = next.spec?.replicas;
    if (!Number.isInteger(replicas) || replicas < 0) {
      throw invalid("Scale", "autoscaling", name, [
        `spec.replicas: Invalid value: ${JSON.stringify(replicas ?? null)}: must be greater than or equal to 0`,
      ]);
    }
    const updated = this.writeDeployment(namespace, name, (d) => {
      d.spec.replicas = replicas;
      delete d.metadata.resourceVersion;
      return d;
    });
    return this.scaleOf(updated);
  }

  private ownedReplicaSets(deployment: KubeObject): KubeObject[] {
    const uid = deployment.metadata.uid;
    return this.listReplicaSets(deployment.metadata.namespace).filter((rs) =>
      (rs.metadata.ownerReferences ?? []).some((o: KubeObject) => o.uid === uid && o.controller === true),
    );
  }

  private podCounts(rs: KubeObject): PodCounts {
    return { replicas: rs.status?.replicas ?? 0, available: rs.status?.availableReplicas ?? 0 };
  }

  private setPods(rs: KubeObject, pods: PodCounts): void {
    rs.spec.replicas = pods.replicas;
    rs.status = {
      replicas: pods.replicas,
      fullyLabeledReplicas: pods.replicas,
      readyReplicas: pods.available,
      availableReplicas: pods.available,
      observedGeneration: rs.metadata.generation,
    };
    for (const [k, v] of Object.entries(rs.status)) if (v === 0) delete rs.status[k];
  }

  private copyAnnotations(deployment: KubeObject, rs: KubeObject): void {
    const annotations: Record<string, string> = rs.metadata.annotations ?? {};
    for (const [k, v] of Object.entries<string>(deployment.metadata.annotations ?? {})) {
      if (!notCopiedToReplicaSet.has(k)) annotations[k] = v;
    }
    const desired = deployment.spec.replicas ?? 1;
    annotations["deployment.kubernetes.io/desired-replicas"] = String(desired);
    annotations["deployment.kubernetes.io/max-replicas"] = String(
      desired + rollingLimits(deployment, desired).surge,
    );
    rs.metadata.annotations = annotations;
  }

  private createReplicaSet(deployment: KubeObject, revision: number, pods: number): KubeObject {
    const template = templateWithoutHash(deployment.spec.template);
    const hash = templateHash(template);
    const name = `${deployment.metadata.name}-${hash}`;
    const labels = { ...(template.metadata?.labels ?? {}), [hashLabel]: hash };
    const rs: KubeObject = {
      kind: "ReplicaSet",
      apiVersion: "apps/v1",
      metadata: {
        name,
        namespace: deployment.metadata.namespace,
        uid: randomUUID(),
        generation: 1,
        creationTimestamp: timestamp(this.now()),
        labels,
        annotations: { [revisionKey]: String(revision) },
        ownerReferences: [
          {
            apiVersion: "apps/v1",
            kind: "Deployment",
            name: deployment.metadata.name,
            uid: deployment.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {
        replicas: 0,
        selector: { matchLabels: { ...(deployment.spec.selector?.matchLabels ?? {}), [hashLabel]: hash } },
        template: { ...template, metadata: { ...(template.metadata ?? {}), labels: { ...labels } } },
      },
      status: {},
    };
    this.copyAnnotations(deployment, rs);
    const healthy = isHealthy(template);
    this.setPods(rs, { replicas: pods, available: healthy ? pods : 0 });
    this.replicaSets.set(key(rs.metadata.namespace, name), rs);
    this.commit("replicasets", "ADDED", rs);
    return rs;
  }

  private computeStatus(
    deployment: KubeObject,
    owned: KubeObject[],
    newRs: KubeObject | undefined,
  ): KubeObject {
    let total = 0;
    let available = 0;
    for (const rs of owned) {
      const pods = this.podCounts(rs);
      total += pods.replicas;
      available += pods.available;
    }
    const updated = newRs ? this.podCounts(newRs).replicas : 0;
    const status: KubeObject = {
      observedGeneration: deployment.status?.observedGeneration ?? 0,
      replicas: total,
      updatedReplicas: updated,
      readyReplicas: available,
      availableReplicas: available,
      unavailableReplicas: Math.max(0, total - available),
    };
    // The real API omits zero counts (omitempty); clients must cope, so the emulator does the same.
    for (const [k, v] of Object.entries(status)) if (v === 0 && k !== "observedGeneration") delete status[k];
    if (deployment.status?.conditions) status.conditions = clone(deployment.status.conditions);
    return status;
  }

  /** One controller step for every Deployment. */
  step(): void {
    for (const state of this.deployments.values()) this.reconcile(state);
  }

  private reconcile(state: DeploymentState): void {
    const deployment = clone(state.object);
    const now = this.now();
    const at = timestamp(now);
    const desired: number = deployment.spec.replicas ?? 1;
    const owned = this.ownedReplicaSets(deployment);
    const wanted = templateWithoutHash(deployment.spec.template);
    let newRs = owned.find((rs) => jsonEqual(templateWithoutHash(rs.spec.template), wanted));
    const oldRs = owned.filter((rs) => rs !== newRs);

    if ((deployment.status.observedGeneration ?? 0) < deployment.metadata.generation) {
      deployment.status.observedGeneration = deployment.metadata.generation;
      const maxOld = Math.max(0, ...oldRs.map(revisionOf));
      if (!newRs) {
        newRs = this.createReplicaSet(deployment, maxOld + 1, 0);
        setCondition(
          deployment,
          "Progressing",
          "True",
          "NewReplicaSetCreated",
          `Created new replica set "${newRs.metadata.name}"`,
          at,
        );
        state.lastProgressAt = now;
      } else if (revisionOf(newRs) <= maxOld) {
        // Reusing an older template (a rollback): it takes the next number and its old one moves to history.
        const previous = revisionOf(newRs);
        const history = newRs.metadata.annotations?.[revisionHistoryKey];
        newRs.metadata.annotations = {
          ...newRs.metadata.annotations,
          [revisionKey]: String(maxOld + 1),
          [revisionHistoryKey]: history ? `${history},${previous}` : String(previous),
        };
        this.copyAnnotations(deployment, newRs);
        newRs.metadata.generation += 1;
        this.commit("replicasets", "MODIFIED", newRs);
        setCondition(
          deployment,
          "Progressing",
          "True",
          "FoundNewReplicaSet",
          `Found new replica set "${newRs.metadata.name}"`,
          at,
        );
        state.lastProgressAt = now;
      } else if (
        deployment.status.conditions?.some((c: KubeObject) => c.reason === "ProgressDeadlineExceeded")
      ) {
        state.lastProgressAt = now;
      }
      deployment.metadata.annotations = {
        ...deployment.metadata.annotations,
        [revisionKey]: String(revisionOf(newRs)),
      };
      this.save(state, deployment, [...oldRs, newRs], newRs);
      return;
    }
    if (!newRs) return;

    const annotated = clone(newRs);
    this.copyAnnotations(deployment, annotated);
    if (!jsonEqual(annotated.metadata.annotations, newRs.metadata.annotations)) {
      newRs.metadata.annotations = annotated.metadata.annotations;
      this.commit("replicasets", "MODIFIED", newRs);
    }

    const moved = deployment.spec.paused ? false : this.moveOneReplica(deployment, newRs, oldRs, desired);
    if (moved) state.lastProgressAt = now;

    const newPods = this.podCounts(newRs);
    const oldLeft = oldRs.some((rs) => this.podCounts(rs).replicas > 0);
    const complete = newPods.replicas === desired && newPods.available === desired && !oldLeft;
    const progressing = deployment.status.conditions?.find((c: KubeObject) => c.type === "Progressing");
    const rsName = newRs.metadata.name;
    if (complete) {
      setCondition(
        deployment,
        "Progressing",
        "True",
        "NewReplicaSetAvailable",
        `ReplicaSet "${rsName}" has successfully progressed.`,
        at,
      );
    } else if (moved) {
      setCondition(
        deployment,
        "Progressing",
        "True",
        "ReplicaSetUpdated",
        `ReplicaSet "${rsName}" is progressing.`,
        at,
      );
    } else if (
      !deployment.spec.paused &&
      progressing?.reason !== "ProgressDeadlineExceeded" &&
      now - state.lastProgressAt > (deployment.spec.progressDeadlineSeconds ?? 600) * this.msPerSecond
    ) {
      setCondition(
        deployment,
        "Progressing",
        "False",
        "ProgressDeadlineExceeded",
        `ReplicaSet "${rsName}" has timed out progressing.`,
        at,
      );
    }
    const minAvailable = desired - rollingLimits(deployment, desired).unavailable;
    const available = owned.reduce((sum, rs) => sum + this.podCounts(rs).available, 0);
    if (available >= minAvailable) {
      setCondition(
        deployment,
        "Available",
        "True",
        "MinimumReplicasAvailable",
        "Deployment has minimum availability.",
        at,
      );
    } else {
      setCondition(
        deployment,
        "Available",
        "False",
        "MinimumReplicasUnavailable",
        "Deployment does not have minimum availability.",
        at,
      );
    }
    this.save(state, deployment, owned, newRs);
    if (complete) this.cleanupHistory(deployment, oldRs);
  }

  /** Moves at most one pod, within maxSurge/maxUnavailable. Returns whether anything changed. */
  private moveOneReplica(
    deployment: KubeObject,
    newRs: KubeObject,
    oldRs: KubeObject[],
    desired: number,
  ): boolean {
    const limits = rollingLimits(deployment, desired);
    const healthy = isHealthy(newRs.spec.template);
    const newPods = this.podCounts(newRs);
    const all = [newRs, ...oldRs].map((rs) => this.podCounts(rs));
    const total = all.reduce((s, p) => s + p.replicas, 0);
    const available = all.reduce((s, p) => s + p.available, 0);
    const update = (rs: KubeObject, pods: PodCounts) => {
      this.setPods(rs, pods);
      this.commit("replicasets", "MODIFIED", rs);
    };
    if (newPods.replicas < desired && total < desired + limits.surge) {
      update(newRs, { replicas: newPods.replicas + 1, available: newPods.available + (healthy ? 1 : 0) });
      return true;
    }
    const withPods = oldRs
      .filter((rs) => this.podCounts(rs).replicas > 0)
      .sort((a, b) => revisionOf(a) - revisionOf(b));
    // Unready old pods go first; a ready one only while enough others stay available.
    const unready = withPods.find((rs) => {
      const p = this.podCounts(rs);
      return p.replicas > p.available;
    });
    if (unready) {
      const p = this.podCounts(unready);
      update(unready, { replicas: p.replicas - 1, available: p.available });
      return true;
    }
    const oldest = withPods[0];
    if (oldest && available - 1 >= desired - limits.unavailable) {
      const p = this.podCounts(oldest);
      update(oldest, { replicas: p.replicas - 1, available: p.available - 1 });
      return true;
    }
    if (newPods.replicas > desired) {
      const unavailable = newPods.replicas - newPods.available;
      update(newRs, {
        replicas: newPods.replicas - 1,
        available: unavailable > 0 ? newPods.available : newPods.available - 1,
      });
      return true;
    }
    return false;
  }

  private save(state: DeploymentState, deployment: KubeObject, owned: KubeObject[], newRs: KubeObject): void {
    deployment.status = this.computeStatus(deployment, owned, newRs);
    if (jsonEqual(deployment, state.object)) return;
    state.object = deployment;
    this.commit("deployments", "MODIFIED", deployment);
  }

  /** Keeps at most revisionHistoryLimit old, empty ReplicaSets, like the real controller. */
  private cleanupHistory(deployment: KubeObject, oldRs: KubeObject[]): void {
    const limit: number = deployment.spec.revisionHistoryLimit ?? 10;
    const empty = oldRs
      .filter((rs) => this.podCounts(rs).replicas === 0)
      .sort((a, b) => revisionOf(a) - revisionOf(b));
    for (const rs of empty.slice(0, Math.max(0, empty.length - limit))) {
      this.replicaSets.delete(key(rs.metadata.namespace, rs.metadata.name));
      this.commit("replicasets", "DELETED", rs);
    }
  }
}

function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => [k, dropNulls(v)]),
    );
  }
  return value;
}

function condition(type: string, status: string, reason: string, message: string, at: string): KubeObject {
  return { type, status, lastUpdateTime: at, lastTransitionTime: at, reason, message };
}

/** Updates a condition; lastTransitionTime moves only when the status flips, as in the real controller. */
function setCondition(
  deployment: KubeObject,
  type: string,
  status: string,
  reason: string,
  message: string,
  at: string,
): void {
  const conditions: KubeObject[] = deployment.status.conditions ?? [];
  const existing = conditions.find((c) => c.type === type);
  if (existing && existing.status === status && existing.reason === reason && existing.message === message)
    return;
  const next = condition(type, status, reason, message, at);
  if (existing && existing.status === status) next.lastTransitionTime = existing.lastTransitionTime;
  deployment.status.conditions = [...conditions.filter((c) => c.type !== type), next];
}
