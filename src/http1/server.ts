// The gateway's HTTP/1.1 server: a net.Server (or a tls.Server) whose connections parse and answer
// requests themselves (see connection.ts), with one sweep a second for the idle and slow-header timeouts.
import net, { type AddressInfo, type Socket } from 'node:net';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
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
  /** Serve HTTPS with these certificates; ALPN offers `http/1.1`. @default undefined (plain HTTP) */
  tls?: Http1TlsSource;
}

/** The certificates of an HTTPS server (src/tls's TlsCertificates is one). */
export interface Http1TlsSource {
  /** Key and certificate (PEM) for clients that name no server (no SNI). */
  defaultCredentials(): { cert: Buffer; key: Buffer };
  /** The context for a client that names a server (SNI). */
  contextFor(serverName: string): SecureContext;
  /** Calls `listener` when the certificates change; returns a function that removes it. */
  onChange(listener: () => void): () => void;
  /** Time a client has to complete its TLS handshake. @default 10_000 */
  readonly handshakeTimeoutMs?: number;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;
const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000;
const SWEEP_MS = 1000;

/** An HTTP/1.1 server for the gateway's front door. */
export class Http1Server implements ConnectionHost {
  readonly #server: net.Server;
  readonly #connections = new Set<Connection>();
  /** Sockets handed to the upgrade handler: no longer ours to read, but cut when a close's grace ends. */
  readonly #upgraded = new Set<Socket>();
  /** Every accepted TCP socket, handshaking ones included, so that a close's grace can cut them all. */
  readonly #accepted = new Set<Socket>();
  #stopTls: (() => void) | undefined;
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
  /** Connections cut before their TLS handshake completed (a plain-HTTP client, a timeout, a bad hello). */
  tlsClientErrors = 0;
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
    const onSocket = (socket: Socket): void => {
      if (this.closing) return void socket.destroy();
      this.#connections.add(new Connection(socket, this));
    };
    // allowHalfOpen: the connection, not net, decides what a client's FIN means (see connection.ts).
    this.#server = options.tls ? this.#tlsServer(options.tls, onSocket) : net.createServer({ allowHalfOpen: true }, onSocket);
    this.#server.on('connection', (socket: Socket) => {
      this.#accepted.add(socket);
      socket.once('close', () => this.#accepted.delete(socket));
    });
  }

  /** TCP sockets open, those still in their TLS handshake and upgraded ones included. */
  get socketCount(): number {
    let open = 0;
    for (const socket of this.#accepted) if (!socket.closed) open++;
    return open;
  }

  /** True when the server speaks TLS. */
  get secure(): boolean {
    return this.#server instanceof tls.Server;
  }

  #tlsServer(source: Http1TlsSource, onSocket: (socket: TLSSocket) => void): tls.Server {
    const server = tls.createServer(
      {
        allowHalfOpen: true,
        ...source.defaultCredentials(),
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: source.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
        SNICallback: (serverName, done) => done(null, source.contextFor(serverName)),
      },
      onSocket,
    );
    // Clients without SNI get the server's own context, which only setSecureContext replaces.
    this.#stopTls = source.onChange(() => server.setSecureContext(source.defaultCredentials()));
    // net leaves a socket whose handshake failed or timed out open; it has nothing more to say.
    server.on('tlsClientError', (_err, socket) => {
      this.tlsClientErrors++;
      socket.destroy();
    });
    return server;
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
    this.#stopTls?.();
    const listening = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const connection of this.#connections) connection.closeIfIdle();
    const grace = setTimeout(() => {
      for (const connection of this.#connections) connection.socket.destroy();
      for (const socket of this.#upgraded) socket.destroy();
      for (const socket of this.#accepted) socket.destroy();
    }, this.#graceMs);
    grace.unref();
    await listening;
    // net's callback can come before each socket's 'close', which is when a connection lets go.
    if (this.#connections.size > 0) await new Promise<void>((resolve) => (this.#allForgotten = resolve));
    // The same holds for sockets that never became connections (a TLS handshake cut by the grace).
    // A socket is `closed` a tick before its 'close' event: those are done already.
    const open = [...this.#accepted].filter((socket) => !socket.closed);
    await Promise.all(open.map((socket) => new Promise((resolve) => socket.once('close', resolve))));
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
