// Helpers for the TLS tests: a real TLS client with the test CA, bounded waits, a certificate swap.
import { copyFile } from 'node:fs/promises';
import tls, { type PeerCertificate, type TLSSocket } from 'node:tls';

/** Options for {@link tlsConnect}. */
export interface TlsConnectOptions {
  /** The SNI name sent; none when undefined. */
  servername?: string;
  /** PEM of the CA trusted. */
  ca: Buffer;
  /** @default 5000 */
  timeoutMs?: number;
}

/**
 * Completes a TLS handshake with the server on loopback `port`, checking the chain against `ca`
 * but not the name (tests ask for names the certificate may not carry, to see which one comes back).
 */
export function tlsConnect(port: number, options: TlsConnectOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: options.ca,
      ...(options.servername === undefined ? {} : { servername: options.servername }),
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: () => undefined,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TLS handshake with port ${port} did not finish within ${options.timeoutMs ?? 5000} ms`));
    }, options.timeoutMs ?? 5000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The common name of the certificate a server presents to a client naming `servername`. */
export async function servedCommonName(port: number, options: TlsConnectOptions): Promise<string> {
  const socket = await tlsConnect(port, options);
  try {
    return commonName(socket.getPeerCertificate());
  } finally {
    socket.destroy();
  }
}

export function commonName(cert: PeerCertificate): string {
  const cn = cert.subject?.CN;
  return Array.isArray(cn) ? cn[0]! : (cn ?? '');
}

/** Polls `check` every 50 ms until it returns true; fails after `ms`. */
export async function eventually(what: string, check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`${what}: not true within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Copies a certificate pair over another's files, key first as a renewal tool would. */
export async function replacePair(from: { cert: string; key: string }, to: { cert: string; key: string }): Promise<void> {
  await copyFile(from.key, to.key);
  await copyFile(from.cert, to.cert);
}
