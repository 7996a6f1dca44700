import { once } from "node:events";
import { createServer, type Server } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CliStack, startCliStack } from "../helpers/cli-stack.ts";
import { freePort } from "../helpers/free-port.ts";
import type { ShipbotProcess } from "../helpers/spawn-shipbot.ts";

let stack: CliStack;
let squatter: Server | undefined;

beforeEach(async () => {
  stack = await startCliStack({
    emulator: {
      deployments: [{ namespace: "staging", name: "api", image: "ghcr.io/acme/api:v1.0.0", replicas: 1 }],
    },
  });
});

afterEach(async () => {
  squatter?.close();
  squatter = undefined;
  await stack.close();
});

/** Waits for the process to exit; one that keeps running is a failure that shows what it printed. */
async function exitOf(p: ShipbotProcess, withinMs: number): Promise<number | null> {
  return Promise.race([
    p.exited,
    sleep(withinMs).then(() => {
      throw new Error(`shipbot still running after ${withinMs} ms:\n${p.output()}`);
    }),
  ]);
}

describe("start-up errors", () => {
  it.each(["serve", "all"])("%s on a port already taken exits 2 with one line naming PORT", async (mode) => {
    const port = await freePort();
    squatter = createServer();
    squatter.listen(port, "127.0.0.1");
    await once(squatter, "listening");

    const p = stack.start([mode], { PORT: String(port) });
    const code = await exitOf(p, 20_000);
    expect({ code, output: p.output().trim() }).toEqual({
      code: 2,
      output: `shipbot: cannot listen on 127.0.0.1:${port}: the port is already in use; set PORT to a free one`,
    });
  });
});
