import { createServer } from "node:net";

/**
 * A loopback port nobody listens on right now, for a server the test starts itself. `below` keeps room
 * above it (Redis Cluster nodes also listen on port + 10000).
 */
export async function freePort(below = 65_536): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
      });
    });
    if (port > 0 && port < below) return port;
  }
}
