import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseConfig } from "../../src/config/load-config.ts";
import { type Config, resolveTarget } from "../../src/core/config.ts";

/**
 * Checks the kustomize overlays in manifests/ the way a cluster would see them: built by the real
 * `kubectl kustomize`, every object validated against the Kubernetes OpenAPI schemas (offline, from the
 * kubernetes-models package), and the properties shipbot relies on asserted one by one: least-privilege RBAC
 * derived from the executor's source, the restricted security context, probes, and how the overlays differ.
 */

const root = join(import.meta.dirname, "..", "..");
const overlays = ["small", "ha"] as const;
type Overlay = (typeof overlays)[number];
const appNamespace = "shipbot";

type Json = Record<string, unknown>;
interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

// ---------------------------------------------------------------------------------------------------------
// Building with kubectl
// ---------------------------------------------------------------------------------------------------------

/**
 * The kustomizations need kustomize v4 or later (kubectl 1.21+); they are tested with v5. Debian's own
 * kubernetes-client package (kubectl 1.20) embeds v2, which fails on them with unclear errors, hence this check.
 */
function assertKubectl(): void {
  const probe = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8", timeout: 10_000 });
  if (probe.error) {
    throw new Error(
      `kubectl is needed to build manifests/ and was not found (${probe.error.message}). Install it: ` +
        "bash scripts/test-setup.sh, or your platform's kubectl package",
    );
  }
  const match = /Kustomize Version:\s*v?(\d+)/.exec(probe.stdout);
  if (!match || Number(match[1]) < 4) {
    throw new Error(
      `kubectl on PATH embeds kustomize ${match ? `v${match[1]}` : "older than v4"}; manifests/ needs kustomize v4 or later ` +
        `(kubectl 1.21+; tested with v5). kubectl said:\n${probe.stdout}${probe.stderr}`,
    );
  }
}

function build(overlay: Overlay): KubeObject[] {
  const dir = join(root, "manifests", "overlays", overlay);
  let text: string;
  try {
    text = execFileSync("kubectl", ["kustomize", dir], {
      encoding: "utf8",
      timeout: 30_000,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`kubectl kustomize manifests/overlays/${overlay} failed:\n${stderr}`, { cause: error });
  }
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`kustomize output is not YAML: ${doc.errors[0]?.message}`);
    return doc.toJS() as KubeObject;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Small accessors (the objects are plain JSON; these keep the assertions readable)
// ---------------------------------------------------------------------------------------------------------

const id = (o: KubeObject): string => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`;
const ofKind = (objects: KubeObject[], kind: string): KubeObject[] => objects.filter((o) => o.kind === kind);

function one(objects: KubeObject[], kind: string, name: string): KubeObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`${kind} ${name} is missing; objects: ${objects.map(id).join(", ")}`);
  return found;
}

function at(value: unknown, ...path: Array<string | number>): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: Json }>;
  envFrom?: Array<{ secretRef?: { name: string; optional?: boolean }; configMapRef?: Json }>;
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
  livenessProbe?: Json;
  readinessProbe?: Json;
  startupProbe?: Json;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Json;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}

interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: Json;
  terminationGracePeriodSeconds?: number;
  volumes?: Array<{ name: string; emptyDir?: Json; configMap?: { name: string }; secret?: Json }>;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
}

const podSpec = (deployment: KubeObject): PodSpec => at(deployment, "spec", "template", "spec") as PodSpec;
const podLabels = (deployment: KubeObject): Record<string, string> =>
  (at(deployment, "spec", "template", "metadata", "labels") ?? {}) as Record<string, string>;
const allContainers = (spec: PodSpec): Container[] => [...(spec.initContainers ?? []), ...spec.containers];

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The shipbot command a container runs (`all`, `serve`, `worker`): its first argument. */
const mode = (container: Container): string | undefined => container.args?.[0];

function loadConfigFrom(objects: KubeObject[]): Config {
  const maps = ofKind(objects, "ConfigMap").filter((o) => o.metadata.name.startsWith("shipbot-config"));
  expect(maps, "exactly one shipbot-config ConfigMap").toHaveLength(1);
  const text = at(maps[0], "data", "shipbot.yaml");
  if (typeof text !== "string") throw new Error("ConfigMap shipbot-config has no data key shipbot.yaml");
  return parseConfig(text, "ConfigMap shipbot-config");
}

// ---------------------------------------------------------------------------------------------------------
// Schema validation, offline
// ---------------------------------------------------------------------------------------------------------

/** kubernetes-models module of an object: `apps/v1` + `Deployment` → kubernetes-models/apps/v1/Deployment. */
const modelModule = (o: KubeObject): string => `kubernetes-models/${o.apiVersion}/${o.kind}`;

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/** Runs the package's compiled OpenAPI validator (types, enums, required fields, formats). */
async function validateAgainstSchema(o: KubeObject): Promise<string | undefined> {
  let Model: ModelClass | undefined;
  try {
    const module = (await import(modelModule(o))) as Record<string, ModelClass | undefined>;
    Model = module[o.kind];
  } catch (error) {
    return `${id(o)}: no schema for ${o.apiVersion} ${o.kind} (${String(error)})`;
  }
  if (!Model) return `${id(o)}: kubernetes-models has no ${o.kind} in ${o.apiVersion}`;
  try {
    new Model(o).validate();
    return undefined;
  } catch (error) {
    const details = (error as { errors?: Array<{ instancePath: string; message?: string }> }).errors ?? [];
    return `${id(o)}: ${details.map((e) => `${e.instancePath} ${e.message ?? ""}`).join("; ") || String(error)}`;
  }
}

/**
 * The validators above ignore unknown fields (the OpenAPI schemas do not forbid them), so a misspelt
 * `readOnlyRootFileSystem` would pass them and be dropped silently by the API server. The package's generated
 * TypeScript interfaces are closed, though: assigning each object as a fresh literal to its interface makes
 * the compiler's excess-property check reject every unknown field, at any depth.
 */
function checkUnknownFields(objects: KubeObject[]): string {
  const dir = mkdtempSync(join(tmpdir(), "shipbot-manifests-"));
  try {
    symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2024",
          skipLibCheck: true,
          types: [],
        },
        files: ["objects.ts"],
      }),
    );
    // One declaration per object; remember where each starts so errors can name the object.
    const starts: Array<{ line: number; object: string }> = [];
    let line = 1;
    const chunks = objects.map((o, i) => {
      const type = `import("${modelModule(o)}").I${o.kind}`;
      const chunk = `export const o${i}: ${type} = ${JSON.stringify(o, null, 2)};\n`;
      starts.push({ line, object: id(o) });
      line += chunk.split("\n").length - 1;
      return chunk;
    });
    writeFileSync(join(dir, "objects.ts"), chunks.join(""));
    const tsc = join(root, "node_modules", ".bin", "tsc");
    const run = spawnSync(tsc, ["-p", ".", "--pretty", "false"], {
      cwd: dir,
      encoding: "utf8",
      timeout: 60_000,
    });
    if (run.error) throw run.error;
    if (run.status === 0) return "";
    return `${run.stdout}${run.stderr}`
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => {
        const at = Number(/objects\.ts\((\d+),/.exec(l)?.[1] ?? 0);
        const owner = starts.filter((s) => s.line <= at).at(-1);
        return owner ? `${owner.object}: ${l.replace(/^objects\.ts\(\d+,\d+\): /, "")}` : l;
      })
      .join("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// What the executor calls, read from its source
// ---------------------------------------------------------------------------------------------------------

/** API group of each kind the executor could touch; an unlisted kind fails the derivation loudly. */
const groupOfKind: Record<string, string> = {
  Deployment: "apps",
  ReplicaSet: "apps",
  StatefulSet: "apps",
  DaemonSet: "apps",
  ControllerRevision: "apps",
  Pod: "",
  Event: "",
  ConfigMap: "",
  Secret: "",
  Service: "",
  Namespace: "",
  Job: "batch",
  CronJob: "batch",
};
/** client-node method prefixes and the RBAC verb each one needs. */
const verbOfPrefix: Record<string, string> = {
  read: "get",
  list: "list",
  patch: "patch",
  replace: "update",
  create: "create",
  delete: "delete",
  deleteCollection: "deletecollection",
};
/** client-node API classes whose methods follow the `<verb>Namespaced<Kind>[<Subresource>]` pattern. */
const knownApiClasses = new Set(["AppsV1Api", "CoreV1Api", "BatchV1Api"]);

/** A permission as "group/resource:verb", e.g. "apps/deployments/scale:patch" (core group: "/pods:get"). */
type Grant = string;
const grant = (group: string, resource: string, verb: string): Grant => `${group}/${resource}:${verb}`;

function resourceOfKind(kindAndSub: string, method: string): { group: string; resource: string } {
  const kind = Object.keys(groupOfKind)
    .filter((k) => kindAndSub.startsWith(k))
    .sort((a, b) => b.length - a.length)[0];
  if (kind === undefined) {
    throw new Error(`executor calls ${method}, whose kind this test does not know: add it to groupOfKind`);
  }
  const sub = kindAndSub.slice(kind.length).toLowerCase();
  const plural = `${kind.toLowerCase()}s`;
  return { group: groupOfKind[kind] ?? "", resource: sub ? `${plural}/${sub}` : plural };
}

interface Derived {
  grants: Set<Grant>;
  /** Every watch call in the source limits itself to one object with a metadata.name field selector. */
  watchesByName: boolean;
  sources: string[];
}

function deriveExecutorGrants(): Derived {
  const dir = join(root, "src", "executors", "kubernetes");
  const files = readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .map((f) => join(dir, f));
  const grants = new Set<Grant>();
  let watchesByName = true;
  for (const file of files) {
    // Comments mention API calls too ("a GET", "kubectl rollout undo"); only code counts.
    const code = readFileSync(file, "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/(^|[^:])\/\/.*$/gm, "$1");
    const where = relative(root, file);

    for (const m of code.matchAll(/makeApiClient\(\s*(\w+)\s*\)/g)) {
      const api = m[1] ?? "";
      if (!knownApiClasses.has(api)) {
        throw new Error(`${where} uses ${api}; teach this test how its methods map to RBAC verbs`);
      }
    }
    if (/\bKubernetesObjectApi\b|\bCustomObjectsApi\b/.test(code)) {
      throw new Error(`${where} uses a generic object API; its RBAC needs cannot be read from method names`);
    }
    const calls =
      /\.\s*(deleteCollection|read|list|patch|replace|create|delete)(Namespaced)?([A-Z]\w*?)(ForAllNamespaces)?\s*\(/g;
    for (const m of code.matchAll(calls)) {
      const [call, prefix = "", namespaced, kindAndSub = "", allNamespaces] = m;
      const method = call.replace(/^\.\s*|\s*\($/g, "");
      const knownKind = Object.keys(groupOfKind).some((k) => kindAndSub.startsWith(k));
      // `.readFile(`, `.createServer(`: not client-node. Any call naming a Kubernetes kind counts.
      if (!namespaced && !allNamespaces && !knownKind) continue;
      if (!namespaced || allNamespaces) {
        throw new Error(
          `${where} calls ${method}, which is cluster-wide: shipbot must stay within namespaced Roles`,
        );
      }
      const { group, resource } = resourceOfKind(kindAndSub, method);
      grants.add(grant(group, resource, verbOfPrefix[prefix] ?? prefix));
    }

    const usesWatch = /\bnew\s+Watch\s*\(/.test(code) || /\.watch\s*\(/.test(code);
    if (usesWatch) {
      const paths = [
        ...code.matchAll(/\/api(?:s\/([a-z0-9.-]+))?\/v\d\w*\/namespaces\/\$\{[^}]+\}\/([a-z]+)/g),
      ];
      if (/\.watch\s*\(/.test(code) && paths.length === 0) {
        throw new Error(`${where} starts a watch on a path this test cannot read; keep the path a literal`);
      }
      for (const [, group = "", resource = ""] of paths) grants.add(grant(group, resource, "watch"));
      if (paths.length > 0 && !/fieldSelector[^\n]*metadata\.name=/.test(code)) watchesByName = false;
    }
  }
  return { grants, watchesByName, sources: files.map((f) => relative(root, f)) };
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

function grantsOfRole(role: KubeObject): Set<Grant> {
  const out = new Set<Grant>();
  for (const rule of (at(role, "rules") ?? []) as PolicyRule[]) {
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs) out.add(grant(group, resource, verb));
      }
    }
  }
  return out;
}

const sorted = (values: Iterable<string>): string[] => [...values].sort();

// ---------------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------------

const built = new Map<Overlay, KubeObject[]>();

beforeAll(() => {
  assertKubectl();
  for (const overlay of overlays) built.set(overlay, build(overlay));
});

function objectsOf(overlay: Overlay): KubeObject[] {
  const objects = built.get(overlay);
  if (!objects) throw new Error(`overlay ${overlay} was not built`);
  return objects;
}

describe.each(overlays)("manifests/overlays/%s", (overlay) => {
  it("validates against the Kubernetes schemas, types and enums", async () => {
    const problems = (await Promise.all(objectsOf(overlay).map(validateAgainstSchema))).filter(Boolean);
    expect(problems).toEqual([]);
  });

  it("has no field the Kubernetes API does not know (closed types of the schema package)", () => {
    expect(checkUnknownFields(objectsOf(overlay))).toBe("");
  });

  it("keeps shipbot in its namespace, its Roles in the target namespaces, and nothing cluster-wide", () => {
    const objects = objectsOf(overlay);
    for (const o of objects) {
      expect(["ClusterRole", "ClusterRoleBinding", "Namespace"], id(o)).not.toContain(o.kind);
      // Secrets are created by the operator (docs/operations.md); manifests only refer to them.
      expect(o.kind, id(o)).not.toBe("Secret");
      if (o.kind === "Role" || o.kind === "RoleBinding") continue;
      expect(o.metadata.namespace, id(o)).toBe(appNamespace);
    }
  });

  it("ships a shipbot.yaml that the app accepts", () => {
    const config = loadConfigFrom(objectsOf(overlay));
    expect(Object.keys(config.services).length).toBeGreaterThan(0);
  });

  it("runs every container with the restricted security context", () => {
    const deployments = ofKind(objectsOf(overlay), "Deployment");
    expect(deployments.length).toBeGreaterThan(0);
    for (const d of deployments) {
      const spec = podSpec(d);
      const pod = spec.securityContext ?? {};
      expect(spec.hostNetwork ?? false, id(d)).toBe(false);
      expect(spec.hostPID ?? false, id(d)).toBe(false);
      expect(spec.hostIPC ?? false, id(d)).toBe(false);
      expect(pod.runAsUser === undefined || Number(pod.runAsUser) > 0, `${id(d)} runAsUser`).toBe(true);
      for (const c of allContainers(spec)) {
        const where = `${id(d)} container ${c.name}`;
        const sc = c.securityContext ?? {};
        expect(sc.runAsNonRoot ?? pod.runAsNonRoot, `${where}: runAsNonRoot`).toBe(true);
        expect(sc.readOnlyRootFilesystem, `${where}: readOnlyRootFilesystem`).toBe(true);
        expect(sc.allowPrivilegeEscalation, `${where}: allowPrivilegeEscalation`).toBe(false);
        expect(sc.privileged ?? false, `${where}: privileged`).toBe(false);
        expect(at(sc, "capabilities", "drop"), `${where}: capabilities.drop`).toContain("ALL");
        expect(at(sc, "capabilities", "add") ?? [], `${where}: capabilities.add`).toEqual([]);
        expect(
          at(sc, "seccompProfile", "type") ?? at(pod, "seccompProfile", "type"),
          `${where}: seccomp`,
        ).toBe("RuntimeDefault");
        // A read-only root needs somewhere to write: /tmp on an emptyDir.
        const tmp = c.volumeMounts?.find((m) => m.mountPath === "/tmp");
        expect(tmp, `${where}: /tmp mount`).toBeDefined();
        expect(
          spec.volumes?.find((v) => v.name === tmp?.name)?.emptyDir,
          `${where}: /tmp is an emptyDir`,
        ).toBeDefined();
      }
    }
  });

  it("pins every image to a tag or digest, never latest", () => {
    for (const d of ofKind(objectsOf(overlay), "Deployment")) {
      for (const c of allContainers(podSpec(d))) {
        const image = c.image ?? "";
        const where = `${id(d)} container ${c.name}: ${image}`;
        const digest = /@sha256:[0-9a-f]{64}$/.test(image);
        const tag = /:([\w][\w.-]{0,127})$/.exec(image.split("/").pop() ?? "")?.[1];
        expect(digest || (tag !== undefined && tag !== "latest"), where).toBe(true);
        expect(image.includes("/"), `${where}: names a registry/repository`).toBe(true);
      }
    }
  });

  it("gives every container resources, probes on its HTTP port, and secrets only by reference", () => {
    for (const d of ofKind(objectsOf(overlay), "Deployment")) {
      for (const c of podSpec(d).containers) {
        const where = `${id(d)} container ${c.name}`;
        for (const kind of ["requests", "limits"] as const) {
          expect(c.resources?.[kind]?.cpu, `${where}: ${kind}.cpu`).toBeDefined();
          expect(c.resources?.[kind]?.memory, `${where}: ${kind}.memory`).toBeDefined();
        }
        const http = c.ports?.find((p) => p.name === "http");
        expect(http?.containerPort, `${where}: http port`).toBe(8080);
        expect(c.env?.find((e) => e.name === "PORT")?.value, `${where}: PORT`).toBe(
          String(http?.containerPort),
        );
        expect(at(c.livenessProbe, "httpGet", "path"), `${where}: liveness`).toBe("/healthz");
        expect(at(c.readinessProbe, "httpGet", "path"), `${where}: readiness`).toBe("/readyz");
        for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
          const port = at(probe, "httpGet", "port");
          if (port !== undefined)
            expect([http?.name, http?.containerPort], `${where}: probe port`).toContain(port);
        }
        expect(c.envFrom, `${where}: envFrom`).toContainEqual({
          secretRef: { name: "shipbot-secrets", optional: true },
        });
        for (const e of c.env ?? []) {
          if (/token|secret|password|key|redis_url/i.test(e.name)) {
            expect(e.value, `${where}: ${e.name} must come from a Secret, not a literal`).toBeUndefined();
          }
        }
        expect(
          at(
            c.env?.find((e) => e.name === "REDIS_URL"),
            "valueFrom",
            "secretKeyRef",
            "name",
          ),
        ).toBe("shipbot-secrets");
      }
    }
  });

  it("mounts the generated ConfigMap where SHIPBOT_CONFIG points", () => {
    const objects = objectsOf(overlay);
    const configMap = ofKind(objects, "ConfigMap").find((o) => o.metadata.name.startsWith("shipbot-config-"));
    expect(configMap, "kustomize adds a content hash to the ConfigMap name").toBeDefined();
    for (const d of ofKind(objects, "Deployment")) {
      const spec = podSpec(d);
      const volume = spec.volumes?.find((v) => v.configMap?.name === configMap?.metadata.name);
      expect(volume, `${id(d)} mounts ${configMap?.metadata.name}`).toBeDefined();
      for (const c of spec.containers) {
        const mount = c.volumeMounts?.find((m) => m.name === volume?.name);
        expect(mount?.readOnly, `${id(d)}: config mount is read-only`).toBe(true);
        const path = c.env?.find((e) => e.name === "SHIPBOT_CONFIG")?.value;
        expect(path, `${id(d)}: SHIPBOT_CONFIG`).toBe(`${mount?.mountPath}/shipbot.yaml`);
      }
    }
  });

  it("gives pods that run jobs a grace period longer than the longest rollout", () => {
    const objects = objectsOf(overlay);
    const config = loadConfigFrom(objects);
    for (const d of ofKind(objects, "Deployment")) {
      const spec = podSpec(d);
      const runsJobs = spec.containers.some((c) => mode(c) === "all" || mode(c) === "worker");
      const grace = spec.terminationGracePeriodSeconds ?? 30;
      if (runsJobs) {
        expect(grace, `${id(d)}: terminationGracePeriodSeconds`).toBeGreaterThan(
          config.queue.rolloutTimeoutMs / 1000,
        );
      } else {
        expect(grace, `${id(d)}: serve needs no long grace period`).toBeLessThanOrEqual(60);
      }
    }
  });

  it("mounts the API token only through the pod spec, never by default", () => {
    const objects = objectsOf(overlay);
    const account = one(objects, "ServiceAccount", "shipbot");
    expect(account.automountServiceAccountToken).toBe(false);
    for (const d of ofKind(objects, "Deployment")) {
      const spec = podSpec(d);
      expect(spec.serviceAccountName, id(d)).toBe("shipbot");
      // Every shipbot mode calls the API: the worker patches Deployments, serve reads them for `status`.
      expect(spec.automountServiceAccountToken, id(d)).toBe(true);
    }
  });

  it("lets in only the HTTP port and lets out only DNS, Redis, the API server and HTTPS", () => {
    const objects = objectsOf(overlay);
    const policy = one(objects, "NetworkPolicy", "shipbot");
    const selector = at(policy, "spec", "podSelector", "matchLabels") as Record<string, string>;
    for (const d of ofKind(objects, "Deployment")) {
      expect(selects(selector, podLabels(d)), `NetworkPolicy covers ${id(d)}`).toBe(true);
    }
    expect(at(policy, "spec", "policyTypes")).toEqual(["Ingress", "Egress"]);
    const ports = (rules: unknown): string[] =>
      sorted(
        ((rules ?? []) as Array<{ ports?: Array<{ port: number; protocol?: string }> }>).flatMap((r) => {
          expect(r.ports, "every rule names its ports").toBeDefined();
          return (r.ports ?? []).map((p) => `${p.protocol ?? "TCP"}/${p.port}`);
        }),
      );
    expect(ports(at(policy, "spec", "ingress"))).toEqual(["TCP/8080"]);
    expect(new Set(ports(at(policy, "spec", "egress")))).toEqual(
      new Set(["UDP/53", "TCP/53", "TCP/6379", "TCP/443", "TCP/6443"]),
    );
  });

  describe("RBAC", () => {
    it("grants in each target namespace exactly what the executor calls, on the configured Deployments", () => {
      const objects = objectsOf(overlay);
      const derived = deriveExecutorGrants();
      expect(derived.sources.length, "executor sources found").toBeGreaterThan(0);
      expect(derived.grants.size, `API calls found in ${derived.sources.join(", ")}`).toBeGreaterThan(0);

      const config = loadConfigFrom(objects);
      const deploymentsByNamespace = new Map<string, Set<string>>();
      for (const [service, svc] of Object.entries(config.services)) {
        for (const env of Object.keys(svc.environments)) {
          const target = resolveTarget(config, service, env);
          if (!target) continue;
          const names = deploymentsByNamespace.get(target.namespace) ?? new Set<string>();
          names.add(target.deployment);
          deploymentsByNamespace.set(target.namespace, names);
        }
      }

      const roles = ofKind(objects, "Role");
      expect(
        sorted(roles.map((r) => r.metadata.namespace ?? "")),
        "one Role per configured namespace",
      ).toEqual(sorted(deploymentsByNamespace.keys()));
      for (const role of roles) {
        const namespace = role.metadata.namespace ?? "";
        const granted = grantsOfRole(role);
        const missing = sorted([...derived.grants].filter((g) => !granted.has(g)));
        const extra = sorted([...granted].filter((g) => !derived.grants.has(g)));
        expect({ missing, extra }, `${id(role)} vs calls in ${derived.sources.join(", ")}`).toEqual({
          missing: [],
          extra: [],
        });

        for (const rule of (at(role, "rules") ?? []) as PolicyRule[]) {
          const where = `${id(role)} rule ${JSON.stringify(rule)}`;
          for (const field of [rule.apiGroups ?? [], rule.resources ?? [], rule.verbs]) {
            expect(field, `${where}: no wildcards`).not.toContain("*");
          }
          expect(rule.nonResourceURLs, where).toBeUndefined();
          const onDeployments = (rule.resources ?? []).every(
            (r) => r === "deployments" || r.startsWith("deployments/"),
          );
          if (onDeployments) {
            // Named Deployments only: the bot cannot patch a database or anything else in the namespace.
            expect(sorted(rule.resourceNames ?? []), where).toEqual(
              sorted(deploymentsByNamespace.get(namespace) ?? []),
            );
            if (rule.verbs.includes("watch")) {
              expect(
                derived.watchesByName,
                "watches use a metadata.name field selector, or resourceNames deny them",
              ).toBe(true);
            }
          } else {
            // ReplicaSets are found by label, which a name restriction would forbid.
            expect(rule.resourceNames, where).toBeUndefined();
          }
        }
      }
    });

    it("binds each Role to shipbot's ServiceAccount and nothing else", () => {
      const objects = objectsOf(overlay);
      const account = one(objects, "ServiceAccount", "shipbot");
      const bindings = ofKind(objects, "RoleBinding");
      expect(sorted(bindings.map((b) => b.metadata.namespace ?? ""))).toEqual(
        sorted(ofKind(objects, "Role").map((r) => r.metadata.namespace ?? "")),
      );
      for (const binding of bindings) {
        const role = ofKind(objects, "Role").find((r) => r.metadata.namespace === binding.metadata.namespace);
        expect(at(binding, "roleRef"), id(binding)).toEqual({
          apiGroup: "rbac.authorization.k8s.io",
          kind: "Role",
          name: role?.metadata.name,
        });
        expect(at(binding, "subjects"), id(binding)).toEqual([
          { kind: "ServiceAccount", name: account.metadata.name, namespace: account.metadata.namespace },
        ]);
      }
    });
  });
});

describe("overlay shapes", () => {
  it("small runs one `all` pod behind the Service, with no autoscaler or disruption budget", () => {
    const objects = objectsOf("small");
    const deployments = ofKind(objects, "Deployment");
    expect(deployments.map((d) => d.metadata.name)).toEqual(["shipbot"]);
    const [d] = deployments;
    if (!d) throw new Error("no Deployment");
    expect(at(d, "spec", "replicas")).toBe(1);
    expect(podSpec(d).containers.map(mode)).toEqual(["all"]);
    expect(
      selects(
        at(one(objects, "Service", "shipbot"), "spec", "selector") as Record<string, string>,
        podLabels(d),
      ),
    ).toBe(true);
    expect(ofKind(objects, "HorizontalPodAutoscaler")).toEqual([]);
    expect(ofKind(objects, "PodDisruptionBudget")).toEqual([]);
  });

  it("ha runs `serve` x2 behind the Service and an autoscaled `worker`, each with a disruption budget", () => {
    const objects = objectsOf("ha");
    const serve = one(objects, "Deployment", "shipbot");
    const worker = one(objects, "Deployment", "shipbot-worker");
    expect(at(serve, "spec", "replicas")).toBe(2);
    expect(podSpec(serve).containers.map(mode)).toEqual(["serve"]);
    expect(podSpec(worker).containers.map(mode)).toEqual(["worker"]);
    // The autoscaler owns the worker's replica count; a value in the manifest would reset it on each apply.
    expect(at(worker, "spec", "replicas")).toBeUndefined();

    const service = at(one(objects, "Service", "shipbot"), "spec", "selector") as Record<string, string>;
    expect(selects(service, podLabels(serve)), "Service selects serve pods").toBe(true);
    expect(selects(service, podLabels(worker)), "Service does not select worker pods").toBe(false);
    for (const d of [serve, worker]) {
      const selector = at(d, "spec", "selector", "matchLabels") as Record<string, string>;
      expect(selects(selector, podLabels(d)), `${id(d)} selects its own pods`).toBe(true);
    }
    expect(
      selects(at(serve, "spec", "selector", "matchLabels") as Record<string, string>, podLabels(worker)),
    ).toBe(false);

    const hpa = one(objects, "HorizontalPodAutoscaler", "shipbot-worker");
    expect(at(hpa, "spec", "scaleTargetRef")).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "shipbot-worker",
    });
    expect(Number(at(hpa, "spec", "minReplicas"))).toBeGreaterThanOrEqual(2);

    const budgets = ofKind(objects, "PodDisruptionBudget");
    for (const d of [serve, worker]) {
      const covering = budgets.filter((b) =>
        selects(at(b, "spec", "selector", "matchLabels") as Record<string, string>, podLabels(d)),
      );
      expect(covering, `one PodDisruptionBudget covers ${id(d)}`).toHaveLength(1);
    }
  });

  it("shares one configuration and one image between the overlays", () => {
    const images = (overlay: Overlay) =>
      new Set(
        ofKind(objectsOf(overlay), "Deployment").flatMap((d) => podSpec(d).containers.map((c) => c.image)),
      );
    expect(images("small")).toEqual(images("ha"));
    expect(images("ha").size).toBe(1);
    expect(loadConfigFrom(objectsOf("small"))).toEqual(loadConfigFrom(objectsOf("ha")));
  });
});

describe("executor call derivation", () => {
  it("reads the calls the executor makes today", () => {
    // A guard for the derivation itself: if it stopped finding calls, the RBAC test above would compare
    // against nothing. The executor at least reads and patches Deployments.
    const { grants } = deriveExecutorGrants();
    expect(grants).toContain("apps/deployments:get");
    expect(grants).toContain("apps/deployments:patch");
  });
});
