// Splits a peer's `host:port` (IPv6 in brackets) into what a socket connects to.
import { ErrorCodes, LamplighterError } from '../errors/index.js';

/** Where a peer node's gateway listens. */
export interface PeerEndpoint {
  readonly host: string;
  readonly port: number;
}

/** Parses `host:port` or `[v6]:port`; throws a LamplighterError naming the address when it is neither. */
export function parsePeerAddress(address: string): PeerEndpoint {
  const colon = address.lastIndexOf(':');
  const port = colon > 0 ? Number(address.slice(colon + 1)) : NaN;
  let host = colon > 0 ? address.slice(0, colon) : '';
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new LamplighterError(ErrorCodes.INTERNAL, `Cannot forward to peer address '${address}': expected host:port, e.g. 10.0.0.2:8080`);
  }
  return { host, port };
}
