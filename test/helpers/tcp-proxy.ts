import { createConnection, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy on loopback in front of a server, for faults between a process and what it talks to:
 * cut every open connection at once (a dropped watch), or hold what clients send (a process whose
 * requests stop reaching the server while the server goes on) and let it through later.
 */
export interface TcpProxy {
  port: number;
  /** Closes every open connection; returns how many sockets it closed. */
  dropAll(): number;
  /** Stops passing what clients send; the server's answers still come back. */
  hold(): void;
  /** Passes on everything held, then carries on as before. */
  release(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const links = new Set<{ client: Socket; upstream: Socket }>();
  let held = false;
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    const link = { client, upstream };
    links.add(link);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    if (held) client.pause();
    else client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => {
      links.delete(link);
      upstream.destroy();
    });
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    dropAll() {
      const count = sockets.size;
      for (const s of sockets) s.destroy();
      return count;
    },
    hold() {
      held = true;
      for (const { client, upstream } of links) {
        client.unpipe(upstream);
        client.pause();
      }
    },
    release() {
      held = false;
      for (const { client, upstream } of links) client.pipe(upstream);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
