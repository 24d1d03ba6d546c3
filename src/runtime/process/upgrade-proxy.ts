// Pipes an upgraded client connection (WebSocket and the like) to a child's port, byte for byte.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { InvocationRequest } from '../../instance/index.js';
import { FORWARDED_HEADERS, forwardedHeaderLines } from './http-proxy.js';

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

/**
 * Connects to the child, replays the upgrade request and `head`, then pipes both ways until
 * either side closes. Resolves with the upstream socket once connected; rejects with
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
      if (head.length > 0) upstream.write(head);
      socket.pipe(upstream);
      upstream.pipe(socket);
      resolve(upstream);
    });
  });
}
