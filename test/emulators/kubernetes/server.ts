/**
 * A Kubernetes API server emulator over real HTTP: discovery, namespaces, apps/v1 Deployments (get, list,
 * watch, the three PATCH formats, PUT, the scale subresource) and ReplicaSets, with a deployment controller
 * that rolls out step by step. Enough for client-node and kubectl; nothing else.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import {
  Cluster,
  type KubeObject,
  matchesFieldSelector,
  matchesLabelSelector,
  type Resource,
  type SeedDeployment,
} from "./cluster.ts";
import {
  apiGroupList,
  apiVersions,
  appsGroupDoc,
  appsV1Resources,
  coreV1Resources,
  version,
} from "./discovery.ts";
import { ApiError } from "./errors.ts";
import {
  applyJsonPatch,
  applyMergePatch,
  applyStrategicPatch,
  clone,
  isObject,
  type Json,
  PatchError,
} from "./patch.ts";
import { toTable, wantsTable } from "./table.ts";
import { caCert, serverCert, serverKey } from "./tls.ts";

export type { SeedDeployment } from "./cluster.ts";

export interface KubeEmulatorOptions {
  host?: string;
  port?: number;
  deployments?: SeedDeployment[];
  /** ms between rollout steps (one replica moves per step); default 100 */
  stepMs?: number;
  /** Scale of seconds for progressDeadlineSeconds; default 1000 = real seconds. Tests use e.g. 10 so a 600 s deadline is hit in 6 s. */
  msPerSecond?: number;
  /**
   * Serve HTTPS with the fixed test certificate (default true). kubectl sends bearer tokens only over TLS;
   * with `false` the kubeconfig turns TLS verification off and only client-node will authenticate.
   */
  tls?: boolean;
}

export interface KubeEmulator {
  url: string;
  /** kubeconfig YAML text pointing at this server (cluster "emulator", user with a bearer token, context "emulator"). */
  kubeconfig(): string;
  /** Writes kubeconfig() to a file and returns its path. */
  writeKubeconfig(path: string): Promise<string>;
  /** The stored Deployment object as JSON (a deep copy), or undefined. */
  // biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary fields of the stored object
  deployment(namespace: string, name: string): any;
  /** Count of successful mutating requests (PATCH/PUT, incl. the scale subresource) per deployment. */
  writes(namespace: string, name: string): number;
  /**
   * Fault injection: the next `count` requests matching (method, path regexp, tested against path and query)
   * answer with `status`; 0 means "hang until the client gives up".
   */
  failNext(match: { method?: string; path?: RegExp }, status: number, count?: number): void;
  close(): Promise<void>;
}

interface Fault {
  method: string | undefined;
  path: RegExp | undefined;
  status: number;
  remaining: number;
}

/** Probes the real server answers without credentials. */
const publicPaths = new Set(["/healthz", "/livez", "/readyz"]);

const patchTypes = new Set([
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
]);

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, error: ApiError): void {
  sendJson(res, error.code, error.toStatus());
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, `the request body is not valid JSON: ${text.slice(0, 80)}`);
  }
}

/** Applies a PATCH body to `current` according to the request's Content-Type. */
function applyPatch(contentType: string, current: KubeObject, patch: unknown): KubeObject {
  try {
    let result: Json;
    if (contentType === "application/json-patch+json") result = applyJsonPatch(current, patch);
    else if (!isObject(patch)) throw new PatchError(400, "a merge patch must be a JSON object");
    else if (contentType === "application/merge-patch+json") result = applyMergePatch(current, patch);
    else result = applyStrategicPatch(current, patch);
    if (!isObject(result)) throw new PatchError(422, "the patched object is not a JSON object");
    return result;
  } catch (error) {
    if (error instanceof PatchError) {
      throw error.status === 422
        ? new ApiError(
            422,
            `the server rejected our request due to an error in our request: ${error.message}`,
          )
        : new ApiError(400, error.message);
    }
    throw error;
  }
}

function asList(kind: string, apiVersion: string, resourceVersion: string, items: KubeObject[]): KubeObject {
  // Typed lists carry kind/apiVersion on the list only, as the real server serialises them.
  const stripped = items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
  return { kind, apiVersion, metadata: { resourceVersion }, items: stripped };
}

export async function startKubeEmulator(options: KubeEmulatorOptions = {}): Promise<KubeEmulator> {
  const host = options.host ?? "127.0.0.1";
  const stepMs = options.stepMs ?? 100;
  const cluster = new Cluster({ msPerSecond: options.msPerSecond ?? 1000 });
  for (const seed of options.deployments ?? []) cluster.seed(seed);
  const token = `emulator-${randomBytes(16).toString("hex")}`;
  const faults: Fault[] = [];
  const streams = new Set<ServerResponse>();
  let url = "";

  const takeFault = (method: string, target: string): Fault | undefined => {
    const fault = faults.find(
      (f) =>
        f.remaining > 0 && (f.method === undefined || f.method === method) && (f.path?.test(target) ?? true),
    );
    if (fault) fault.remaining -= 1;
    return fault;
  };

  const filterItems = (items: KubeObject[], query: URLSearchParams): KubeObject[] => {
    const labels = query.get("labelSelector");
    const fields = query.get("fieldSelector");
    return items.filter(
      (o) =>
        (labels === null || matchesLabelSelector(o.metadata.labels, labels)) &&
        (fields === null || matchesFieldSelector(o, fields)),
    );
  };

  const serveWatch = (
    req: IncomingMessage,
    res: ServerResponse,
    resource: Resource,
    namespace: string | undefined,
    query: URLSearchParams,
    current: () => KubeObject[],
  ): void => {
    const matches = (o: KubeObject) =>
      (namespace === undefined || o.metadata.namespace === namespace) && filterItems([o], query).length === 1;
    // Validate selectors before committing to a 200 stream.
    filterItems([], query);
    for (const o of current()) matches(o);
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-cache, private" });
    res.flushHeaders();
    streams.add(res);
    const send = (type: string, object: unknown) => res.write(`${JSON.stringify({ type, object })}\n`);
    const rvParam = query.get("resourceVersion");
    let from: number;
    if (rvParam === null || rvParam === "" || rvParam === "0") {
      for (const o of current()) if (matches(o)) send("ADDED", o);
      from = Number(cluster.resourceVersion);
    } else {
      from = Number(rvParam);
      if (!Number.isFinite(from) || from < cluster.oldestResumable) {
        const gone = new ApiError(410, `too old resource version: ${rvParam} (${cluster.oldestResumable})`);
        send("ERROR", gone.toStatus());
        res.end();
        streams.delete(res);
        return;
      }
    }
    for (const event of cluster.eventsSince(from)) {
      if (event.resource === resource && matches(event.object)) send(event.type, event.object);
    }
    const unsubscribe = cluster.subscribe((event) => {
      if (event.resource === resource && matches(event.object)) send(event.type, event.object);
    });
    const timeoutSeconds = Number(query.get("timeoutSeconds") ?? 0);
    const timer =
      timeoutSeconds > 0
        ? setTimeout(() => {
            res.end();
          }, timeoutSeconds * 1000)
        : undefined;
    const stop = () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
      streams.delete(res);
    };
    res.on("close", stop);
    req.on("close", stop);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? "GET";
    const target = new URL(req.url ?? "/", "http://emulator");
    const path = target.pathname.replace(/\/+$/, "") || "/";
    const query = target.searchParams;

    const fault = takeFault(method, `${target.pathname}${target.search}`);
    if (fault) {
      if (fault.status === 0) return; // hang: the client's timeout or a closed socket ends it
      sendError(
        res,
        new ApiError(fault.status, `injected failure (HTTP ${fault.status}) for ${method} ${path}`),
      );
      return;
    }
    if (!publicPaths.has(path) && req.headers.authorization !== `Bearer ${token}`) {
      sendError(res, new ApiError(401, "Unauthorized"));
      return;
    }
    if (publicPaths.has(path)) {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok");
      return;
    }

    const get = (body: () => unknown) => {
      if (method !== "GET")
        throw new ApiError(405, `the server does not allow this method on the requested resource`);
      sendJson(res, 200, body());
    };
    const watching = query.get("watch") === "1" || query.get("watch") === "true";

    switch (path) {
      case "/version":
        return get(() => version);
      case "/api":
        return get(() => apiVersions(new URL(url).host));
      case "/apis":
        return get(() => apiGroupList);
      case "/apis/apps":
        return get(() => appsGroupDoc);
      case "/api/v1":
        return get(() => coreV1Resources);
      case "/apis/apps/v1":
        return get(() => appsV1Resources);
      case "/api/v1/namespaces": {
        const items = () => filterItems([...cluster.namespaces.values()], query);
        if (watching)
          return serveWatch(req, res, "namespaces", undefined, query, () => [...cluster.namespaces.values()]);
        return get(() =>
          wantsTable(req.headers.accept)
            ? toTable("namespaces", items(), cluster.resourceVersion)
            : asList("NamespaceList", "v1", cluster.resourceVersion, items()),
        );
      }
    }

    let m = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(path);
    if (m) {
      const ns = decodeURIComponent(m[1] ?? "");
      return get(() => {
        const found = cluster.namespaces.get(ns);
        if (!found) throw new ApiError(404, `namespaces "${ns}" not found`, { name: ns, kind: "namespaces" });
        return wantsTable(req.headers.accept)
          ? toTable("namespaces", [found], cluster.resourceVersion)
          : found;
      });
    }

    m = /^\/apis\/apps\/v1(?:\/namespaces\/([^/]+))?\/(deployments|replicasets)$/.exec(path);
    if (m) {
      const ns = m[1] === undefined ? undefined : decodeURIComponent(m[1]);
      const resource = m[2] as "deployments" | "replicasets";
      const all = () =>
        resource === "deployments" ? cluster.listDeployments(ns) : cluster.listReplicaSets(ns);
      if (watching) return serveWatch(req, res, resource, ns, query, all);
      const kind = resource === "deployments" ? "DeploymentList" : "ReplicaSetList";
      return get(() =>
        wantsTable(req.headers.accept)
          ? toTable(resource, filterItems(all(), query), cluster.resourceVersion)
          : asList(kind, "apps/v1", cluster.resourceVersion, filterItems(all(), query)),
      );
    }

    m = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/replicasets\/([^/]+)$/.exec(path);
    if (m) {
      const [ns, name] = [decodeURIComponent(m[1] ?? ""), decodeURIComponent(m[2] ?? "")];
      return get(() => {
        const rs = cluster.getReplicaSet(ns, name);
        return wantsTable(req.headers.accept) ? toTable("replicasets", [rs], cluster.resourceVersion) : rs;
      });
    }

    m = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)(?:\/(scale|status))?$/.exec(path);
    if (m) {
      const [ns, name] = [decodeURIComponent(m[1] ?? ""), decodeURIComponent(m[2] ?? "")];
      const sub = m[3];
      if (method === "GET") {
        const deployment = cluster.getDeployment(ns, name);
        if (sub === "scale") return sendJson(res, 200, cluster.scaleOf(deployment));
        const table = wantsTable(req.headers.accept) && sub === undefined;
        return sendJson(
          res,
          200,
          table ? toTable("deployments", [deployment], cluster.resourceVersion) : deployment,
        );
      }
      if (sub === "status")
        throw new ApiError(405, "the emulator does not accept writes to deployments/status");
      let compute: (current: KubeObject) => KubeObject;
      if (method === "PATCH") {
        const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "";
        if (!patchTypes.has(contentType)) {
          throw new ApiError(
            415,
            `the body of the request was in an unknown format - accepted media types include: ${[...patchTypes].join(", ")}`,
          );
        }
        const patch = await readBody(req);
        compute = (current) => applyPatch(contentType, current, patch);
      } else if (method === "PUT") {
        const body = await readBody(req);
        if (!isObject(body)) throw new ApiError(400, "the request body must be a JSON object");
        compute = () => clone(body) as KubeObject;
      } else {
        throw new ApiError(405, "the server does not allow this method on the requested resource");
      }
      const result =
        sub === "scale" ? cluster.writeScale(ns, name, compute) : cluster.writeDeployment(ns, name, compute);
      cluster.recordWrite(ns, name);
      return sendJson(res, 200, result);
    }

    throw new ApiError(404, "the server could not find the requested resource");
  };

  const useTls = options.tls ?? true;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((error: unknown) => {
      const apiError =
        error instanceof ApiError
          ? error
          : new ApiError(500, `emulator error: ${(error as Error)?.message ?? error}`);
      if (!res.headersSent) sendError(res, apiError);
      else res.end();
    });
  };
  const server = useTls
    ? createHttpsServer({ cert: serverCert, key: serverKey }, listener)
    : createHttpServer(listener);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  url = `${useTls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
  const ticker = setInterval(() => cluster.step(), stepMs);

  const kubeconfig = () =>
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "  - name: emulator",
      "    cluster:",
      `      server: ${url}`,
      useTls
        ? `      certificate-authority-data: ${Buffer.from(caCert).toString("base64")}`
        : // client-node refuses a plain http:// server unless TLS verification is explicitly off.
          "      insecure-skip-tls-verify: true",
      "users:",
      "  - name: emulator-user",
      "    user:",
      `      token: ${token}`,
      "contexts:",
      "  - name: emulator",
      "    context:",
      "      cluster: emulator",
      "      user: emulator-user",
      "current-context: emulator",
      "preferences: {}",
      "",
    ].join("\n");

  return {
    url,
    kubeconfig,
    async writeKubeconfig(path) {
      await writeFile(path, kubeconfig(), { mode: 0o600 });
      return path;
    },
    deployment(namespace, name) {
      const found = cluster.findDeployment(namespace, name);
      return found === undefined ? undefined : clone(found);
    },
    writes: (namespace, name) => cluster.writes(namespace, name),
    failNext(match, status, count = 1) {
      faults.push({ method: match.method?.toUpperCase(), path: match.path, status, remaining: count });
    },
    async close() {
      clearInterval(ticker);
      for (const stream of streams) stream.end();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
