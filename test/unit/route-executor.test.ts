import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load-config.ts";
import type { ExecutorPort } from "../../src/executors/port.ts";
import { gitOpsFileFor, routeExecutor } from "../../src/executors/route-executor.ts";

const yaml = `
environments: { staging: {}, production: {} }
services:
  api:
    image: ghcr.io/acme/api
    gitops: { repo: acme/deploy, path: "apps/api/{env}/kustomization.yaml", format: kustomize-images }
    environments: { staging: { namespace: staging }, production: { namespace: production } }
  web:
    image: ghcr.io/acme/web
    environments: { staging: { namespace: staging } }
roles: {}
`;

function named(name: string): ExecutorPort & { used: string[] } {
  const used: string[] = [];
  const result = async () => {
    used.push(name);
    return { summary: "", image: "", previousImage: "", revision: 1, replicas: 1, resumed: false };
  };
  return {
    used,
    deploy: result,
    rollback: result,
    scale: result,
    status: async () => {
      used.push(name);
      throw new Error("not needed");
    },
    history: async () => [],
  };
}

describe("routeExecutor", () => {
  const config = parseConfig(yaml);
  const ctx = { jobId: "j1", fence: 1, signal: new AbortController().signal, onProgress: () => undefined };

  it("sends GitOps services to the GitOps executor and the rest to Kubernetes", async () => {
    const kube = named("kube");
    const gitops = named("gitops");
    const executor = routeExecutor(config, kube, gitops);
    await executor.deploy(
      { namespace: "production", deployment: "api", container: "api" },
      "ghcr.io/acme/api:v2",
      ctx,
    );
    await executor.deploy(
      { namespace: "staging", deployment: "web", container: "web" },
      "ghcr.io/acme/web:v2",
      ctx,
    );
    expect(gitops.used).toEqual(["gitops"]);
    expect(kube.used).toEqual(["kube"]);
  });

  it("names the file per environment, defaulting the image name to the service's image", () => {
    expect(gitOpsFileFor(config, { namespace: "production", deployment: "api", container: "api" })).toEqual({
      repo: "acme/deploy",
      branch: "main",
      path: "apps/api/production/kustomization.yaml",
      format: "kustomize-images",
      imageName: "ghcr.io/acme/api",
      mode: "commit",
      autoMerge: false,
    });
    expect(
      gitOpsFileFor(config, { namespace: "staging", deployment: "web", container: "web" }),
    ).toBeUndefined();
  });

  it("refuses a GitOps file outside the repository or a yaml-path without its path", () => {
    expect(() =>
      parseConfig(yaml.replace("apps/api/{env}/kustomization.yaml", "../etc/passwd.yaml")),
    ).toThrow(/services\.api\.gitops\.path/);
    expect(() => parseConfig(yaml.replace("format: kustomize-images", "format: yaml-path"))).toThrow(
      /format yaml-path needs yamlPath/,
    );
  });
});
