import { createServer } from "node:net";

/** Ports this process handed out: a server may not listen on one yet when the next is asked for. */
const handedOut = new Set<number>();

/**
 * A loopback port nobody listens on right now, for a server the test starts itself (Redis Cluster nodes,
 * which also listen on port + 10000, take `freeClusterPort` below). Taken below the kernel's ephemeral
 * range (32768 and up on Linux), where no outgoing connection of a test running alongside can take it
 * between this check and the server's start, or while a test has the server stopped to restart it; each
 * test worker (VITEST_POOL_ID) draws from a slice of its own, and never the same port twice.
 */
export async function freePort(): Promise<number> {
  const slice = Number(process.env.VITEST_POOL_ID ?? process.pid) % 10;
  for (let tries = 0; tries < 500; tries++) {
    const port = 15_000 + slice * 500 + Math.floor(Math.random() * 500);
    if (handedOut.has(port)) continue;
    if (await isFree(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`found no free port between ${15_000 + slice * 500} and ${15_500 + slice * 500}`);
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
