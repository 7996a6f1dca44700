import { describe, expect, it } from "vitest";
import { spawnShipbot } from "../helpers/spawn-shipbot.ts";
import { redisUrl } from "../helpers/test-runtime.ts";

/** The demo as a new user meets it: `printf '…' | npm run -s demo`, run through the real CLI. */
async function demo(script: string): Promise<{ code: number | null; out: string }> {
  const run = spawnShipbot(["demo"], { REDIS_URL: redisUrl }, script);
  const code = await run.exited;
  return { code, out: run.output() };
}

describe("npm run demo with piped input", () => {
  it("deploys, and status shows the new image tag", async () => {
    const { code, out } = await demo("/deploy api staging v2\n/status api staging\n");
    expect(out).toContain("> /deploy api staging v2");
    expect(out).toMatch(/▶ Rolling out · \d\/3 updated/);
    expect(out).toMatch(/✅ Deployed ghcr\.io\/acme\/api:v2 in \d+s/);
    const status = out.slice(out.indexOf("> /status api staging"));
    expect(status).toMatch(/staging: ghcr\.io\/acme\/api:v2 · 3\/3 available · revision \d+ · rolled out/);
    expect(code).toBe(0);
  });

  it("rolls back to the previous tag, and scales to 4 available replicas", async () => {
    const { code, out } = await demo(
      "/deploy api staging v2\n/rollback api staging\n/scale api staging 4\n/status api staging\n",
    );
    expect(out).toMatch(/✅ Rolled back to ghcr\.io\/acme\/api:v1\.0\.0 \(revision \d+\)/);
    expect(out).toMatch(/✅ Scaled to 4 replicas/);
    expect(out.slice(out.indexOf("> /status api staging"))).toMatch(
      /staging: ghcr\.io\/acme\/api:v1\.0\.0 · 4\/4 available/,
    );
    expect(code).toBe(0);
  });

  it("answers bad input with one line and exits non-zero, changing nothing", async () => {
    const { code, out } = await demo(
      "/deploy apu staging v2\n/scale api staging 99\n/deploy api production v2\n/status api staging\n",
    );
    expect(out).toContain("no service `apu`; did you mean `api`?");
    expect(out).toContain("api in staging may run between 1 and 10 replicas, not 99");
    expect(out).toContain(
      "not allowed: deploy api in production needs role `sre`; you hold `deployer`, `viewer`",
    );
    expect(out).toMatch(/staging: ghcr\.io\/acme\/api:v1\.0\.0 · 3\/3 available/);
    expect(out).not.toContain("Final state of every job");
    expect(code).toBe(1);
  });

  it("says what is missing when Redis cannot be reached", async () => {
    const run = spawnShipbot(["demo"], { REDIS_URL: "redis://127.0.0.1:1" }, "/deploy api staging v2\n");
    expect(await run.exited).toBe(2);
    expect(run.output()).toContain("the demo needs Redis at redis://127.0.0.1:1");
  });
});
