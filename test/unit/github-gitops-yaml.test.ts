import { describe, expect, it } from "vitest";
import { isShipbotError } from "../../src/core/errors.ts";
import { readConfigValue, writeConfigValue } from "../../src/executors/gitops/edit-config-yaml.ts";

const kustomization = `# Production overlay for api.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base   # shared manifests
images:
  - name: ghcr.io/acme/worker
    newTag: "1111111"
  - name: ghcr.io/acme/api   # bumped by shipbot
    newTag: "0000000"   # keep quoted
replicas:
  - name: api
    count: 3
`;

const api = { format: "kustomize-images", imageName: "ghcr.io/acme/api" } as const;

describe("kustomize images", () => {
  it("replaces only the tag's characters, keeping quotes and comments", () => {
    const out = writeConfigValue(kustomization, api, "3f2c1ab", "k.yaml");
    expect(out).toBe(kustomization.replace('newTag: "0000000"', 'newTag: "3f2c1ab"'));
    expect(readConfigValue(out, api, "k.yaml")).toBe("3f2c1ab");
    expect(readConfigValue(out, { ...api, imageName: "ghcr.io/acme/worker" }, "k.yaml")).toBe("1111111");
  });

  it("quotes a plain tag that would otherwise read back as a number", () => {
    const plain = "images:\n  - name: ghcr.io/acme/api\n    newTag: v1   # x\n";
    expect(writeConfigValue(plain, api, "1.10", "k.yaml")).toBe(
      'images:\n  - name: ghcr.io/acme/api\n    newTag: "1.10"   # x\n',
    );
    expect(writeConfigValue(plain, api, "v2", "k.yaml")).toBe(plain.replace("v1", "v2"));
  });

  it("adds a missing newTag, and refuses a missing entry or a pinned digest", () => {
    const noTag = "images:\n  - name: ghcr.io/acme/api\n";
    expect(readConfigValue(writeConfigValue(noTag, api, "abc", "k.yaml"), api, "k.yaml")).toBe("abc");
    for (const text of ["resources: []\n", "images:\n  - name: ghcr.io/acme/api\n    digest: sha256:00\n"]) {
      try {
        writeConfigValue(text, api, "abc", "k.yaml");
        expect.unreachable();
      } catch (error) {
        expect(isShipbotError(error) && error.message.startsWith("k.yaml: ")).toBe(true);
      }
    }
  });
});

describe("yaml paths", () => {
  const values = `# Helm values
image:
  repository: ghcr.io/acme/api
  tag: '0000000' # managed by shipbot
replicaCount: 2
sidecars:
  - image: ghcr.io/acme/proxy:1.0
`;

  it("writes a dotted path, numbers and sequence indexes in place", () => {
    const tagged = writeConfigValue(values, { format: "yaml-path", path: "image.tag" }, "3f2c1ab", "v.yaml");
    expect(tagged).toBe(values.replace("'0000000'", "'3f2c1ab'"));
    const scaled = writeConfigValue(values, { format: "yaml-path", path: "replicaCount" }, 5, "v.yaml");
    expect(scaled).toBe(values.replace("replicaCount: 2", "replicaCount: 5"));
    const sidecar = writeConfigValue(
      values,
      { format: "yaml-path", path: "sidecars.0.image" },
      "ghcr.io/acme/proxy:1.1",
      "v.yaml",
    );
    expect(sidecar).toBe(values.replace("proxy:1.0", "proxy:1.1"));
  });

  it("refuses to replace a mapping and reports invalid YAML", () => {
    expect(() => writeConfigValue(values, { format: "yaml-path", path: "image" }, "x", "v.yaml")).toThrow(
      /not a plain value/,
    );
    expect(() => writeConfigValue("a: [\n", { format: "yaml-path", path: "a" }, "x", "v.yaml")).toThrow(
      /not valid YAML/,
    );
  });
});
