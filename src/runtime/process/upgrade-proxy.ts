// Passes an upgrade request (WebSocket and the like) to a child; on its 101, pipes the two
// connections byte for byte.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { InvocationRequest } from '../../instance/index.js';
import { requestHead } from './http-proxy.js';
import { ResponseParser } from './response-parser.js';

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

/** What the child answered an upgrade with. */
export interface UpgradeAnswer {
  /** The connection to the child: a tunnel after a 101, otherwise ending once the answer is relayed. */
  upstream: net.Socket;
  /** The status of the child's answer: 101, or the status it refused the upgrade with. */
  status: number;
}

/**
 * Connects to the child, sends it the upgrade request and reads its answer. On `101 Switching
 * Protocols` the answer goes back to the client, `head` and the rest of the client's bytes go on
 * to the child, and the two connections are piped both ways until either closes. Any other answer
 * is relayed to the client as it came, and both connections end with it, so that a refused
 * upgrade can never become a raw tunnel to the child around the gateway. Resolves once the
 * answer's head is read; rejects with UPSTREAM_UNAVAILABLE, leaving `socket` untouched for the
 * caller to answer, when the child cannot be reached or fails before it answers.
 */
export function pipeUpgrade(exchange: UpgradeExchange, options: PipeUpgradeOptions): Promise<UpgradeAnswer> {
  const { request, socket, head } = exchange;
  const host = options.host ?? '127.0.0.1';
  const timeout = options.connectTimeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const upstream = net.connect({ host, port: options.port });
    let answered = false;
    const fail = (message: string, cause?: unknown): void => {
      upstream.destroy();
      if (!answered) reject(new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, `${options.label}: ${message}`, { cause }));
    };
    const closeBoth = (): void => {
      upstream.destroy();
      socket.destroy();
    };
    upstream.setTimeout(timeout, () => {
      // Coded as a connect timeout, as the request pool codes its own, so callers can tell it from a failure after connecting.
      const message = `connect to ${host}:${options.port} took over ${timeout} ms`;
      fail(message, Object.assign(new Error(message), { code: 'ETIMEDOUT' }));
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => (answered ? closeBoth() : fail(`the connection to ${host}:${options.port} failed (${err.code ?? err.message})`, err)));
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      upstream.write(requestHead(request, 'upgrade'));
    });

    const parser = new ResponseParser();
    let status = 0;
    parser.expect(request.method, { onHead: (h) => (status = h.status), onData: () => {}, onEnd: () => {} }, true);
    const before: Buffer[] = []; // informational answers read before the final one
    const finish = (): void => {
      upstream.destroy();
      socket.end();
      (socket as net.Socket).destroySoon?.();
    };
    const onData = (chunk: Buffer): void => {
      let used: number;
      try {
        used = parser.execute(chunk);
      } catch (err) {
        if (!answered) return fail(`answered the upgrade with a malformed response: ${(err as Error).message}`, err);
        return closeBoth();
      }
      if (!answered) {
        if (status === 0) return void before.push(chunk);
        answered = true;
        socket.on('error', closeBoth);
        socket.on('close', closeBoth);
        upstream.on('close', closeBoth);
        resolve({ upstream, status });
        // After a 101 the rest of the read is the new protocol's; after a refusal, only its answer is relayed.
        const answer = status === 101 ? chunk : chunk.subarray(0, used);
        socket.write(before.length === 0 ? answer : Buffer.concat([...before, answer]));
        if (status === 101) {
          upstream.off('data', onData);
          if (head.length > 0) upstream.write(head);
          socket.pipe(upstream);
          upstream.pipe(socket);
          return;
        }
        if (parser.done) finish();
        return;
      }
      socket.write(used === chunk.length ? chunk : chunk.subarray(0, used));
      if (parser.done) finish();
    };
    upstream.on('data', onData);
    upstream.once('end', () => {
      if (!answered) return fail('the child closed the connection before it answered the upgrade');
      if (status === 101) return;
      try {
        parser.finish();
        finish();
      } catch {
        closeBoth();
      }
    });
    upstream.once('close', () => {
      if (!answered) fail('the child closed the connection before it answered the upgrade');
    });
    // Given up on before the child answered (the client left, the deadline passed): the child's
    // connection is closed, and the client's socket left to the caller.
    const signal = request.signal;
    const onAbort = (): void => {
      if (!answered) fail(`the upgrade was abandoned before the child answered (${signal.reason instanceof Error ? signal.reason.message : 'the client went away'})`, signal.reason);
    };
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      upstream.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  });
}
