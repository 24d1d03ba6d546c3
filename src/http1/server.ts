// The gateway's HTTP/1.1 server: a net.Server whose connections parse and answer requests
// themselves (see connection.ts), with one sweep a second for the idle and slow-header timeouts.
import net, { type AddressInfo, type Socket } from 'node:net';
import { Connection, type ConnectionHost, type Refusal } from './connection.js';
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
  /**
   * Builds the answer to a request that cannot be read (400, 408, 417, 431, 501, 505): `message`
   * says what was wrong. @default a JSON `{"error":{"code":"LL_BAD_REQUEST","message"}}` body
   */
  refusal?(status: number, message: string): Refusal;
}

/** Options for {@link Http1Server}. */
export interface Http1ServerOptions {
  /**
   * Time a client has to send a request's head, from its first byte (or from connecting), and
   * to finish sending a body the answer did not wait for; 0 for no limit. @default 60_000
   */
  headersTimeoutMs?: number;
  /** Time an idle connection is kept between requests; 0 for no limit. @default 65_000 */
  keepAliveTimeoutMs?: number;
  /** Time connections still busy when {@link Http1Server.close} is called are given before they are cut. @default 2000 */
  closeGraceMs?: number;
}

const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;
const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000;
const SWEEP_MS = 1000;

/** An HTTP/1.1 server for the gateway's front door. */
export class Http1Server implements ConnectionHost {
  readonly #server: net.Server;
  readonly #connections = new Set<Connection>();
  /** Sockets handed to the upgrade handler: no longer ours to read, but cut when a close's grace ends. */
  readonly #upgraded = new Set<Socket>();
  readonly headersMs: number;
  readonly keepAliveMs: number;
  readonly sweepMs: number;
  readonly #graceMs: number;
  #sweep: NodeJS.Timeout | undefined;
  #closed: Promise<void> | undefined;
  #allForgotten: (() => void) | undefined;
  date = new Date().toUTCString();
  now = Date.now();
  closing = false;
  readonly onUpgrade: ((req: ServerRequest, socket: Socket, head: Buffer) => void) | undefined;

  constructor(
    private readonly handlers: Http1Handlers,
    options: Http1ServerOptions = {},
  ) {
    const headersMs = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
    const keepAliveMs = options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
    this.headersMs = headersMs;
    this.keepAliveMs = keepAliveMs;
    this.sweepMs = Math.min(SWEEP_MS, ...[headersMs, keepAliveMs].filter((ms) => ms > 0));
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
    this.#sweep = setInterval(() => this.#tick(), this.sweepMs);
    this.#sweep.unref();
    return (server.address() as AddressInfo).port;
  }

  /** Connections currently open (upgraded ones are no longer counted). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Stops accepting connections, closes idle ones at once and busy ones after their current
   * answer; after `closeGraceMs` cuts whatever is left, upgraded connections included. Resolves
   * once every connection is closed and its exchange has heard so.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.closing = true;
    const listening = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const connection of this.#connections) connection.closeIfIdle();
    const grace = setTimeout(() => {
      for (const connection of this.#connections) connection.socket.destroy();
      for (const socket of this.#upgraded) socket.destroy();
    }, this.#graceMs);
    grace.unref();
    await listening;
    // net's callback can come before each socket's 'close', which is when a connection lets go.
    if (this.#connections.size > 0) await new Promise<void>((resolve) => (this.#allForgotten = resolve));
    clearTimeout(grace);
    clearInterval(this.#sweep);
  }

  onRequest(req: ServerRequest, res: ServerResponse): void {
    this.handlers.request(req, res);
  }

  refusal(status: number, message: string): Refusal {
    if (this.handlers.refusal) return this.handlers.refusal(status, message);
    return { headers: ['content-type', 'application/json'], body: Buffer.from(JSON.stringify({ error: { code: 'LL_BAD_REQUEST', message: `Bad request: ${message}` } })) };
  }

  forget(connection: Connection, upgraded?: Socket): void {
    this.#connections.delete(connection);
    if (upgraded) {
      this.#upgraded.add(upgraded);
      upgraded.once('close', () => this.#upgraded.delete(upgraded));
    }
    if (this.#connections.size === 0) this.#allForgotten?.();
  }

  #tick(): void {
    this.now = Date.now();
    this.date = new Date(this.now).toUTCString();
    // The connections' times come from the previous ticks, so they may be up to one tick behind.
    for (const connection of this.#connections) connection.sweep(this.now);
  }
}
