import { createServer } from "node:net";

/**
 * A loopback port nobody listens on right now, for a server the test starts itself (Redis Cluster nodes,
 * which also listen on port + 10000, take `freeClusterPort` below). Taken below the kernel's ephemeral
 * range (32768 and up on Linux), where no outgoing connection of a test running alongside can take it
 * between this check and the server's start, or while a test has the server stopped to restart it.
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 500; tries++) {
    const port = 15_000 + Math.floor(Math.random() * 5_000);
    if (await isFree(port)) return port;
  }
  throw new Error("found no free port between 15000 and 20000");
}

/** Whether a server could listen on this loopback port right now. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A port for a Redis Cluster node: it and its cluster bus port (port + 10000) both free, both below the
 * kernel's ephemeral range (32768 and up on Linux), and clear of `taken` nodes' pairs. An ephemeral port
 * can be handed to any outgoing connection of a test running alongside, so a bus port in that range
 * could be taken between this check and the node's start, and the node would not start.
 */
export async function freeClusterPort(taken: number[] = []): Promise<number> {
  const used = new Set(taken.flatMap((p) => [p, p + 10_000]));
  for (let tries = 0; tries < 500; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 2_700);
    if (used.has(port) || used.has(port + 10_000)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) return port;
  }
  throw new Error("found no free port pair for a Redis Cluster node between 20000 and 32700");
}
