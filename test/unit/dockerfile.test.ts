import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * No Docker engine runs where these tests run, so the image cannot be built here. What can be checked from
 * the files is checked: the Dockerfile's stages and instructions, .dockerignore, tsconfig.build.json, and that
 * the compiled entrypoint the image starts really runs.
 */

const root = join(import.meta.dirname, "..", "..");
const read = (file: string): string => readFileSync(join(root, file), "utf8");

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}
interface Stage {
  name: string;
  /** Base image or earlier stage, with ARG defaults substituted. */
  from: string;
  instructions: Instruction[];
}

/** Reads a Dockerfile into stages; joins continued lines and drops comments. */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  let pending = "";
  let startLine = 0;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) return;
    if (pending === "") startLine = index + 1;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    if (line.startsWith("#")) return; // a comment inside a continued instruction
    const full = `${pending}${line}`.trim();
    pending = "";
    const match = /^(\w+)\s+([\s\S]*)$/.exec(full);
    if (match)
      instructions.push({
        keyword: (match[1] ?? "").toUpperCase(),
        args: (match[2] ?? "").trim(),
        line: startLine,
      });
  });

  const args = new Map<string, string>();
  const stages: Stage[] = [];
  const substitute = (value: string) =>
    value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args.get(a ?? b) ?? "");
  for (const instruction of instructions) {
    if (instruction.keyword === "ARG" && stages.length === 0) {
      const [name = "", value = ""] = instruction.args.split("=", 2);
      args.set(name.trim(), value.trim());
    } else if (instruction.keyword === "FROM") {
      const [image = "", as, name] = instruction.args.split(/\s+/);
      stages.push({
        name: as?.toUpperCase() === "AS" && name ? name : String(stages.length),
        from: substitute(image),
        instructions: [],
      });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`line ${instruction.line}: ${instruction.keyword} before the first FROM`);
      stage.instructions.push(instruction);
    }
  }
  return { args, stages };
}

const dockerfile = parseDockerfile(read("Dockerfile"));
const finalStage = (): Stage => {
  const stage = dockerfile.stages.at(-1);
  if (!stage) throw new Error("the Dockerfile has no FROM");
  return stage;
};
const all = (stage: Stage, keyword: string): Instruction[] =>
  stage.instructions.filter((i) => i.keyword === keyword);
const last = (stage: Stage, keyword: string): Instruction | undefined => all(stage, keyword).at(-1);

/** COPY's flags and operands: `COPY --from=build /app/dist ./dist` → { from: "build", sources: [...], dest }. */
function parseCopy(instruction: Instruction): { from: string | undefined; sources: string[]; dest: string } {
  const words = instruction.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith("--"));
  const operands = words.filter((w) => !w.startsWith("--"));
  const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
  return { from, sources: operands.slice(0, -1), dest: operands.at(-1) ?? "" };
}

const packageJson = JSON.parse(read("package.json")) as {
  engines?: { node?: string };
  scripts?: Record<string, string>;
};

describe("Dockerfile", () => {
  it("builds in several stages from an official Node image pinned to an exact version", () => {
    const { stages } = dockerfile;
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const names = new Set<string>();
    const major = /(\d+)/.exec(packageJson.engines?.node ?? "")?.[1];
    for (const stage of stages) {
      if (!names.has(stage.from)) {
        // node:<major>.<minor>.<patch>[-variant][@sha256:digest]; never latest, never a bare major.
        const pinned = /^node:(\d+)\.\d+\.\d+(?:-[a-z0-9.-]+)?(?:@sha256:[0-9a-f]{64})?$/.exec(stage.from);
        expect(pinned, `stage ${stage.name} FROM ${stage.from}`).not.toBeNull();
        expect(pinned?.[1], `stage ${stage.name}: Node major matches package.json engines`).toBe(major);
      }
      names.add(stage.name);
    }
  });

  it("installs exactly the locked dependencies and compiles in a build stage", () => {
    const runs = dockerfile.stages.flatMap((s) =>
      all(s, "RUN").map((r) => ({ stage: s.name, command: r.args })),
    );
    expect(
      runs.some((r) => /\bnpm ci\b/.test(r.command) && !/--omit=dev/.test(r.command)),
      "npm ci with dev deps",
    ).toBe(true);
    expect(
      runs.some((r) => /\bnpm run build\b/.test(r.command)),
      "npm run build",
    ).toBe(true);
    // `npm install` may change the lock file's resolution; an image build must not.
    expect(runs.filter((r) => /\bnpm (install|i)\b/.test(r.command))).toEqual([]);
    expect(packageJson.scripts?.build).toBe("tsc -p tsconfig.build.json");
  });

  it("takes node_modules from a stage that installed production dependencies only", () => {
    const copies = all(finalStage(), "COPY").map(parseCopy);
    const modules = copies.find((c) => c.sources.some((s) => /(^|\/)node_modules\/?$/.test(s)));
    expect(modules?.from, "node_modules is copied from another stage").toBeDefined();
    const source = dockerfile.stages.find((s) => s.name === modules?.from);
    const commands = (source ? all(source, "RUN") : []).map((r) => r.args).join("\n");
    expect(commands, `stage ${modules?.from}`).toMatch(/npm (ci|prune)\b[^\n]*--omit=dev/);
    expect(commands, `stage ${modules?.from} builds nothing`).not.toMatch(/npm run build/);
  });

  it("puts only the compiled app, production modules, package.json and examples in the final image", () => {
    const stage = finalStage();
    // Where each copied thing lands, relative to WORKDIR: `COPY package.json ./` → package.json.
    const destinations = all(stage, "COPY").flatMap((instruction) => {
      const { sources, dest } = parseCopy(instruction);
      const intoDir = dest.endsWith("/") || dest === ".";
      return sources.map((source) =>
        posix.normalize(intoDir ? posix.join(dest, posix.basename(source)) : dest).replace(/\/$/, ""),
      );
    });
    expect(new Set(destinations)).toEqual(
      new Set(["node_modules", "dist/src", "dist/commands", "package.json", "examples"]),
    );
    expect(all(stage, "ADD"), "no ADD (remote URLs, archives)").toEqual([]);
    expect(all(stage, "RUN"), "nothing runs in the final stage").toEqual([]);
  });

  it("runs as a non-root numeric user in production mode", () => {
    const stage = finalStage();
    const user = last(stage, "USER")?.args ?? "";
    const match = /^(\d+)(?::(\d+))?$/.exec(user);
    expect(match, `USER ${user} is numeric, so Kubernetes' runAsNonRoot can verify it`).not.toBeNull();
    expect(Number(match?.[1])).toBeGreaterThan(0);
    if (match?.[2] !== undefined) expect(Number(match[2])).toBeGreaterThan(0);
    expect(all(stage, "ENV").map((e) => e.args)).toContain("NODE_ENV=production");
  });

  it("starts the compiled entrypoint with node directly (exec form), `all` by default", () => {
    const stage = finalStage();
    const entrypoint = JSON.parse(last(stage, "ENTRYPOINT")?.args ?? "null") as unknown;
    const cmd = JSON.parse(last(stage, "CMD")?.args ?? "null") as unknown;
    expect(entrypoint).toEqual(["node", "dist/src/bin/shipbot.js"]);
    expect(cmd).toEqual(["all"]);
    // The compiled file corresponds to the source entry under tsconfig.build.json's rootDir.
    expect(existsSync(join(root, "src", "bin", "shipbot.ts"))).toBe(true);
  });

  it("declares no secret and contains nothing that looks like a credential", () => {
    const text = read("Dockerfile");
    for (const stage of dockerfile.stages) {
      for (const instruction of [...all(stage, "ENV"), ...all(stage, "ARG")]) {
        const names = instruction.args.split(/\s+/).map((pair) => pair.split("=")[0] ?? "");
        for (const name of names) {
          expect(name, `line ${instruction.line}`).not.toMatch(
            /token|secret|passw|api_?key|private|credential|MicrosoftApp/i,
          );
        }
      }
    }
    for (const [name] of dockerfile.args) {
      expect(name).not.toMatch(/token|secret|passw|key/i);
    }
    expect(text).not.toMatch(/xox[abpe]-|xapp-|ghp_|github_pat_|AKIA[0-9A-Z]{16}|-----BEGIN/);
    expect(text).not.toMatch(/--mount=type=secret|\.npmrc/);
  });
});

describe(".dockerignore", () => {
  const patterns = read(".dockerignore")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const included = patterns.filter((p) => p.startsWith("!")).map((p) => p.slice(1).replace(/\/$/, ""));

  it("excludes everything by default and lets in only what the build copies", () => {
    expect(patterns[0]).toBe("*");
    const contextSources = dockerfile.stages
      .flatMap((s) => all(s, "COPY").map(parseCopy))
      .filter((c) => c.from === undefined)
      .flatMap((c) => c.sources.map((s) => s.replace(/^\.\//, "").replace(/\/$/, "")));
    expect(new Set(included)).toEqual(new Set(contextSources));
  });

  it("never lets in local modules, builds, git data or secrets", () => {
    for (const path of included) {
      expect(path).not.toMatch(/(^|\/)(node_modules|dist|\.git|\.env|bench|docs|manifests)(\/|$)/);
    }
    for (const secret of ["**/.env", "**/.env.*", "**/node_modules"]) expect(patterns).toContain(secret);
  });
});

describe("tsconfig.build.json", () => {
  const config = JSON.parse(read("tsconfig.build.json")) as {
    extends?: string;
    compilerOptions?: Record<string, unknown>;
    include?: string[];
  };

  it("emits src and commands to dist/, with .ts import specifiers rewritten to .js", () => {
    expect(config.extends).toBe("./tsconfig.json");
    expect(config.compilerOptions).toMatchObject({
      noEmit: false,
      outDir: "dist",
      rootDir: ".",
      rewriteRelativeImportExtensions: true,
    });
    expect(config.include).toEqual(["src", "commands"]);
  });

  it("produces an entrypoint that runs `config validate` with plain node (no type stripping)", () => {
    // Compile into a temporary folder (not the shared dist/) and run the result the way the image does.
    const dir = mkdtempSync(join(tmpdir(), "shipbot-build-"));
    try {
      symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
      writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
      const tsc = spawnSync(
        join(root, "node_modules", ".bin", "tsc"),
        ["-p", "tsconfig.build.json", "--outDir", join(dir, "dist"), "--pretty", "false"],
        { cwd: root, encoding: "utf8", timeout: 60_000 },
      );
      expect(`${tsc.stdout}${tsc.stderr}`, "npm run build").toBe("");
      expect(tsc.status).toBe(0);
      const entry = join(dir, "dist", "src", "bin", "shipbot.js");
      expect(readFileSync(entry, "utf8")).not.toMatch(/from\s+["']\.{1,2}\/[^"']+\.ts["']/);
      const run = spawnSync(
        process.execPath,
        ["--no-experimental-strip-types", entry, "config", "validate", "examples/shipbot.yaml"],
        {
          cwd: root,
          encoding: "utf8",
          timeout: 30_000,
          env: { PATH: process.env.PATH ?? "", NODE_ENV: "production" },
        },
      );
      expect(`${run.stdout}${run.stderr}`).toMatch(/examples\/shipbot\.yaml: valid/);
      expect(run.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
