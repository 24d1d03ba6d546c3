// The gateway's HTTP/1.1 server: a net.Server whose connections parse and answer requests
// themselves (see connection.ts), with one sweep a second for the idle and slow-header timeouts.
import net, { type AddressInfo, type Socket } from 'node:net';
import { Connection, type ConnectionHost } from './connection.js';
import type { ServerRequest } from './server-request.js';
import type { ServerResponse } from './server-response.js';

/** What the server calls for each request and each upgrade. */
export interface Http1Handlers {
  request(req: ServerRequest, res: ServerResponse): void;
  /**
   * Takes over the connection of a request that asks to switch protocols; `head` holds the
   * bytes the client sent after the request head. When absent, such requests are served as
   * ordinary ones. @default undefined
   */
  upgrade?(req: ServerRequest, socket: Socket, head: Buffer): void;
}

/** Options for {@link Http1Server}. */
export interface Http1ServerOptions {
  /** Time a client has to send a request's head, from its first byte (or from connecting). @default 60_000 */
  headersTimeoutMs?: number;
  /** Time an idle connection is kept between requests. @default 65_000 */
  keepAliveTimeoutMs?: number;
  /** Time connections still busy when {@link Http1Server.close} is called are given before they are cut. @default 2000 */
  closeGraceMs?: number;
}

export const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000;
const SWEEP_MS = 1000;

/** An HTTP/1.1 server for the gateway's front door. */
export class Http1Server implements ConnectionHost {
  readonly #server: net.Server;
  readonly #connections = new Set<Connection>();
  readonly #headersMs: number;
  readonly #keepAliveMs: number;
  readonly #graceMs: number;
  #sweep: NodeJS.Timeout | undefined;
  date = new Date().toUTCString();
  now = Date.now();
  closing = false;
  readonly onUpgrade: ((req: ServerRequest, socket: Socket, head: Buffer) => void) | undefined;

  constructor(
    private readonly handlers: Http1Handlers,
    options: Http1ServerOptions = {},
  ) {
    this.#headersMs = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
    this.#keepAliveMs = options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
    this.#graceMs = options.closeGraceMs ?? 2000;
    this.onUpgrade = handlers.upgrade?.bind(handlers);
    // allowHalfOpen: the connection, not net, decides what a client's FIN means (see connection.ts).
    this.#server = net.createServer({ allowHalfOpen: true }, (socket) => {
      if (this.closing) return void socket.destroy();
      this.#connections.add(new Connection(socket, this));
    });
  }

  /** Starts listening; resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    const server = this.#server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#sweep = setInterval(() => this.#tick(), Math.min(SWEEP_MS, this.#headersMs, this.#keepAliveMs));
    this.#sweep.unref();
    return (server.address() as AddressInfo).port;
  }

  /** Connections currently open (upgraded ones are no longer counted). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Stops accepting connections, closes idle ones at once and busy ones after their current
   * answer (or after `closeGraceMs`); resolves when all are closed.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const connection of this.#connections) connection.closeIfIdle();
    const grace = setTimeout(() => {
      for (const connection of this.#connections) connection.socket.destroy();
    }, this.#graceMs);
    grace.unref();
    await closed;
    clearTimeout(grace);
    clearInterval(this.#sweep);
  }

  onRequest(req: ServerRequest, res: ServerResponse): void {
    this.handlers.request(req, res);
  }

  forget(connection: Connection): void {
    this.#connections.delete(connection);
  }

  #tick(): void {
    this.now = Date.now();
    this.date = new Date(this.now).toUTCString();
    for (const connection of this.#connections) connection.sweep(this.now, this.#headersMs, this.#keepAliveMs);
  }
}
