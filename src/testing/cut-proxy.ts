// A TCP proxy on loopback that a test can cut and heal, to part one NATS client from its server.
import { connect, createServer, type Socket } from 'node:net';

/** A running {@link startCutProxy}. */
export interface CutProxy {
  readonly port: number;
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  /** Destroys every connection through the proxy and refuses new ones until {@link heal}. */
  cut(): void;
  /** Lets connections through again. */
  heal(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port forwarding to `127.0.0.1:targetPort`. */
export async function startCutProxy(targetPort: number): Promise<CutProxy> {
  const sockets = new Set<Socket>();
  let cut = false;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const server = createServer((client) => {
    // Accepted and dropped at once: the client sees its connection fail and keeps retrying.
    if (cut) {
      client.destroy();
      return;
    }
    track(client);
    const upstream = connect(targetPort, '127.0.0.1');
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.once('error', end);
    upstream.once('error', end);
    client.once('close', end);
    upstream.once('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  const destroyAll = (): void => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    cut: () => {
      cut = true;
      destroyAll();
    },
    heal: () => {
      cut = false;
    },
    close: async () => {
      cut = true;
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
