// A plain-HTTP listener that sends every request to the same place over HTTPS (308, method kept).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Options for {@link startHttpsRedirect}. */
export interface HttpsRedirectOptions {
  /** Port of the HTTPS gateway the redirects point to; 443 is left out of the URL. */
  httpsPort: number;
}

/** A running redirect listener. */
export interface HttpsRedirect {
  readonly port: number;
  close(): Promise<void>;
}

// A host name, an IPv4 address or a bracketed IPv6 one, then an optional port (RFC 9110's Host).
const HOST = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::\d{0,5})?$/;

/**
 * Where a plain-HTTP request belongs over HTTPS: the Host header's name with the HTTPS port in
 * place of its own, and the same path and query. Undefined when the Host is missing or malformed.
 */
export function httpsLocation(hostHeader: string | undefined, target: string, httpsPort: number): string | undefined {
  const match = hostHeader === undefined ? null : HOST.exec(hostHeader);
  if (!match) return undefined;
  const path = target.startsWith('/') ? target : '/';
  return `https://${match[1]}${httpsPort === 443 ? '' : `:${httpsPort}`}${path}`;
}

/** Listens on `port` (0 for a free one) and answers every request with a 308 to HTTPS. */
export async function startHttpsRedirect(port: number, host: string, options: HttpsRedirectOptions): Promise<HttpsRedirect> {
  const server = http.createServer((req, res) => {
    const location = httpsLocation(req.headers.host, req.url ?? '/', options.httpsPort);
    // Nothing of the body is read: the client sends it again to the new location.
    if (location === undefined) {
      res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' });
      res.end('Bad request: a Host header naming this server is required\n');
      return;
    }
    res.writeHead(308, { location, 'content-type': 'text/plain', 'content-length': '0', connection: 'close' });
    res.end();
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
