// Turns a request into the partition key its breaker is found by, as [function.breaker].partition says.
import type { BreakerPartition } from '../../manifest/index.js';
import type { InvocationRequest } from '../../instance/index.js';

/** The key of every request when a function has one breaker (`partition = "none"`). */
export const WHOLE_FUNCTION_KEY = '*';

/** Longest key kept; longer values are cut, so a partition costs a bounded number of bytes. */
export const MAX_KEY_LENGTH = 256;

/** Reads a request's partition key. */
export type PartitionKeyOf = (request: InvocationRequest) => string;

/** How a partition reads in messages and the error body: "none", "client", "path", "header:x-tenant". */
export function describePartition(partition: BreakerPartition): string {
  return partition.kind === 'header' ? `header:${partition.name}` : partition.kind;
}

/**
 * The function reading `partition`'s key from a request. A missing header is the empty key (one
 * partition for every request without it); a repeated header is keyed by its first value.
 */
export function partitionKeyOf(partition: BreakerPartition): PartitionKeyOf {
  switch (partition.kind) {
    case 'none':
      return () => WHOLE_FUNCTION_KEY;
    case 'client':
      return clientKey;
    case 'path':
      return pathKey;
    case 'header': {
      const name = partition.name;
      return (request) => {
        const value = request.headers[name];
        if (value === undefined) return '';
        return typeof value === 'string' ? value : (value[0] ?? '');
      };
    }
  }
}

// A request another node forwarded arrives from that node; the client is the address the
// forwarding node appended to x-forwarded-for, its last entry.
function clientKey(request: InvocationRequest): string {
  if (request.forwardedBy === undefined) return request.remoteAddress;
  const xff = request.headers['x-forwarded-for'];
  if (typeof xff !== 'string') return request.remoteAddress;
  const comma = xff.lastIndexOf(',');
  return comma < 0 ? xff.trim() : xff.slice(comma + 1).trim();
}

// The path without its query: `/orders/7?full=1` and `/orders/7` share a breaker.
function pathKey(request: InvocationRequest): string {
  const url = request.url;
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * A copy of `key` (already cut to MAX_KEY_LENGTH) fit to keep for a long time: not a slice of
 * the request head it was read from, since V8 keeps a slice's whole parent string alive.
 */
export function retainedKey(key: string): string {
  return Buffer.from(key, 'utf8').toString('utf8');
}
