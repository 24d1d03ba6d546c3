// Finds free loopback ports for child processes and keeps them reserved while an instance holds them.
import net from 'node:net';

const reserved = new Set<number>();
const MAX_ATTEMPTS = 20;

function askKernelForPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Binds `host` port 0 to learn a free port, skipping ports already handed to another live
 * instance of this process. The port is free when returned; the child binds it moments later.
 */
export async function reservePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const port = await askKernelForPort(host);
    if (port > 0 && !reserved.has(port)) {
      reserved.add(port);
      return port;
    }
  }
  throw new Error(`Cannot find a free port on ${host} after ${MAX_ATTEMPTS} attempts`);
}

/** Returns a port from {@link reservePort} once its instance no longer uses it. */
export function releasePort(port: number): void {
  reserved.delete(port);
}
