// Loopback HTTP servers for the load generator tests: hello, failing, slow, k-at-a-time and admin API.
import http from 'node:http';
import net from 'node:net';
import { systemClock, type Clock } from '../src/runtime/process/index.js';

/** A started server and what it has seen. */
export interface TestServer {
  url: string;
  port: number;
  /** Requests received so far. */
  count: () => number;
  /** Connections accepted so far. */
  connections: () => number;
  /** Last request's method, headers and body. */
  last: () => { method: string; headers: http.IncomingHttpHeaders; body: string } | undefined;
  close: () => Promise<void>;
}

/** A server from {@link startServer}, which also tells how many requests it holds. */
export interface LoadTestServer extends TestServer {
  /** Requests received on connections accepted since the last {@link LoadTestServer.newGeneration} and not yet answered. */
  open: () => number;
  /** Stops counting, in {@link LoadTestServer.open}, requests of the connections accepted so far (a finished run's). */
  newGeneration: () => void;
}

/** Options for {@link startServer}. */
export interface StartServerOptions {
  /** Status of every answer. @default 200 */
  status?: number | ((n: number) => number);
  /** Time each request is held before it is answered. @default 0 */
  holdMs?: number;
  /** Requests served at once; the rest wait in arrival order (at most 10 000). @default Infinity */
  capacity?: number;
  /** Never answer (for timeouts). @default false */
  silent?: boolean;
  /** Time source of the holds. @default systemClock */
  clock?: Clock;
}

/** Starts a loopback server on a random port. */
export async function startServer(options: StartServerOptions = {}): Promise<LoadTestServer> {
  const { status = 200, holdMs = 0, capacity = Number.POSITIVE_INFINITY, silent = false, clock = systemClock } = options;
  let count = 0;
  let generation = 0;
  let open = 0;
  let last: ReturnType<TestServer['last']>;
  // Each slot serves one request at a time. A timer that fires late shortens the slot's next hold by
  // as much, so a slot stays busy `holdMs` per request on average even on a loaded machine and the
  // server's capacity stays k / holdMs.
  const free: Array<{ lateMs: number }> = [];
  for (let i = 0; i < Math.min(capacity, 10_000); i++) free.push({ lateMs: 0 });
  const waiting: Array<() => void> = [];
  const connectionGeneration = new WeakMap<net.Socket, number>();
  const server = http.createServer((req, res) => {
    const n = count++;
    const born = connectionGeneration.get(req.socket);
    let counted = born === generation;
    if (counted) open++;
    const uncount = (): void => {
      if (counted && born === generation) open--;
      counted = false;
    };
    res.once('finish', uncount);
    res.once('close', uncount);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      last = { method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      if (silent) return;
      const answer = () => {
        const code = typeof status === 'function' ? status(n) : status;
        res.writeHead(code, { 'content-type': 'text/plain' });
        res.end('hello\n');
      };
      if (holdMs === 0 && capacity === Number.POSITIVE_INFINITY) return answer();
      if (capacity === Number.POSITIVE_INFINITY) return void clock.setTimeout(answer, holdMs);
      const run = () => {
        const slot = free.pop() as { lateMs: number };
        const hold = Math.max(0, holdMs - slot.lateMs);
        const started = clock.now();
        clock.setTimeout(() => {
          slot.lateMs = Math.min(holdMs, Math.max(0, clock.now() - started - hold));
          answer();
          free.push(slot);
          waiting.shift()?.();
        }, hold);
      };
      if (free.length > 0) run();
      else waiting.push(run);
    });
  });
  let connections = 0;
  server.on('connection', (socket: net.Socket) => {
    connections++;
    connectionGeneration.set(socket, generation);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    count: () => count,
    connections: () => connections,
    open: () => open,
    newGeneration: () => {
      generation++;
      open = 0;
    },
    last: () => last,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port with nothing listening on it (bound, then released). */
export async function refusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A stand-in for the admin API's `GET /v1/functions/{name}`, requiring a bearer token. */
export async function startAdminServer(token: string, functions: Record<string, unknown>): Promise<TestServer & { auth: () => string | undefined }> {
  let count = 0;
  let auth: string | undefined;
  const server = http.createServer((req, res) => {
    count++;
    auth = req.headers.authorization;
    const match = /^\/v1\/functions\/([^/]+)$/.exec(req.url ?? '');
    if (auth !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
    } else if (!match || !(decodeURIComponent(match[1] as string) in functions)) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(functions[decodeURIComponent(match[1] as string)]));
    }
  });
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    count: () => count,
    connections: () => connections,
    last: () => undefined,
    auth: () => auth,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
