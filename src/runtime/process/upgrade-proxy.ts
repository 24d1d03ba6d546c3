// Pipes an upgraded client connection (WebSocket and the like) to a child's port, byte for byte.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { InvocationRequest } from '../../instance/index.js';
import { FORWARDED_HEADERS, forwardedHeaderLines } from './http-proxy.js';
import { ResponseParser } from './response-parser.js';

/** The request head sent to the child for an upgrade: the client's own headers plus x-forwarded-*. */
export function upgradeRequestHead(request: InvocationRequest): string {
  let head = `${request.method} ${request.url} HTTP/1.1\r\n`;
  const headers = request.headers;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || FORWARDED_HEADERS.has(name)) continue;
    if (typeof value === 'string') head += `${name}: ${value}\r\n`;
    else for (const v of value) head += `${name}: ${v}\r\n`;
  }
  const priorFor = headers['x-forwarded-for'];
  const prior = Array.isArray(priorFor) ? priorFor.join(', ') : priorFor;
  return `${head}${forwardedHeaderLines(prior, request.remoteAddress, headers.host ?? request.host)}\r\n`;
}

/** An upgrade as the gateway hands it over. */
export interface UpgradeExchange {
  /** The upgrade request (its head is already parsed). */
  request: InvocationRequest;
  /** The client's raw connection. */
  socket: Duplex;
  /** Bytes the client sent after the request head. */
  head: Buffer;
}

/** Options for {@link pipeUpgrade}. */
export interface PipeUpgradeOptions {
  /** Port the child listens on. */
  port: number;
  /** Names the instance in error messages. */
  label: string;
  /** Address of the child. @default '127.0.0.1' */
  host?: string;
  /** Time to connect to the child. @default 5000 */
  connectTimeoutMs?: number;
}

/** Largest response head the child may send to an upgrade request. */
const MAX_ANSWER_HEAD = 64 * 1024;

/**
 * Connects to the child and replays the upgrade request. Only if the child answers
 * `101 Switching Protocols` are `head` and the rest of the client's bytes sent on and the two
 * connections piped both ways until either closes; any other answer is passed back to the client
 * and both connections end with it, so that a refused upgrade can never become a raw tunnel to
 * the child around the gateway. Resolves with the upstream socket once connected; rejects with
 * UPSTREAM_UNAVAILABLE (leaving `socket` untouched for the caller to answer) when it cannot connect.
 */
export function pipeUpgrade(exchange: UpgradeExchange, options: PipeUpgradeOptions): Promise<net.Socket> {
  const { request, socket, head } = exchange;
  const host = options.host ?? '127.0.0.1';
  const timeout = options.connectTimeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const upstream = net.connect({ host, port: options.port });
    const fail = (message: string, cause?: unknown): void => {
      upstream.destroy();
      reject(new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, `${options.label}: ${message}`, { cause }));
    };
    upstream.setTimeout(timeout, () => fail(`connect to ${host}:${options.port} took over ${timeout} ms`));
    upstream.once('error', (err: NodeJS.ErrnoException) => fail(`cannot connect to ${host}:${options.port} (${err.code ?? err.message})`, err));
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      upstream.removeAllListeners('error');
      upstream.removeAllListeners('timeout');
      const closeBoth = (): void => {
        upstream.destroy();
        socket.destroy();
      };
      upstream.on('error', closeBoth);
      socket.on('error', closeBoth);
      upstream.on('close', closeBoth);
      socket.on('close', closeBoth);
      upstream.write(upgradeRequestHead(request));
      relayAnswer(upstream, socket, head, request.method, closeBoth);
      resolve(upstream);
    });
  });
}

/** Reads the child's answer to the upgrade request and either opens the tunnel or relays the refusal. */
function relayAnswer(upstream: net.Socket, socket: Duplex, head: Buffer, method: string, closeBoth: () => void): void {
  let got: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
    const end = got.indexOf('\r\n\r\n');
    if (end < 0) {
      if (got.length > MAX_ANSWER_HEAD) closeBoth();
      return;
    }
    upstream.off('data', onData);
    upstream.pause();
    if (/^HTTP\/1\.[01] 101[ \r]/.test(got.toString('latin1', 0, Math.min(end + 2, 32)))) {
      socket.write(got);
      if (head.length > 0) upstream.write(head);
      socket.pipe(upstream);
      upstream.pipe(socket);
      return;
    }
    relayRefusal(upstream, socket, got, method, closeBoth);
  };
  upstream.on('data', onData);
}

/** Passes the child's non-101 answer back as it came, up to its end, then ends both connections. */
function relayRefusal(upstream: net.Socket, socket: Duplex, first: Buffer, method: string, closeBoth: () => void): void {
  const parser = new ResponseParser();
  const finish = (): void => {
    upstream.destroy();
    socket.end();
    (socket as net.Socket).destroySoon?.();
  };
  parser.expect(method, { onHead: () => {}, onData: () => {}, onEnd: () => {} });
  const relay = (chunk: Buffer): void => {
    let used: number;
    try {
      used = parser.execute(chunk);
    } catch {
      return closeBoth();
    }
    socket.write(used === chunk.length ? chunk : chunk.subarray(0, used));
    if (parser.done) finish();
  };
  relay(first);
  if (parser.done) return;
  upstream.on('data', relay);
  upstream.once('end', () => {
    try {
      parser.finish();
      finish();
    } catch {
      closeBoth();
    }
  });
  upstream.resume();
}
