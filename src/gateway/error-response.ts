// The one place where errors become HTTP responses, for the gateway and the admin API alike.
import { toLamplighterError } from '../errors/index.js';
import type { HeaderPairs } from '../instance/index.js';

/** A response ready to write: status, headers, JSON body. */
export interface ErrorResponse {
  status: number;
  headers: HeaderPairs;
  body: Buffer;
}

/** Turns anything thrown into a JSON error response that names the code, the reason and the request. */
export function errorResponse(err: unknown, requestId: string | undefined): ErrorResponse {
  const e = toLamplighterError(err);
  // Internal errors keep their detail in the log, not in the response.
  const message = e.code === 'LL_INTERNAL' ? 'Internal error' : e.message;
  const body = Buffer.from(JSON.stringify({ error: { code: e.code, message, requestId, ...(e.detail ?? {}) } }));
  const headers: HeaderPairs = [['content-type', 'application/json'], ['content-length', String(body.length)]];
  if (requestId) headers.push(['x-request-id', requestId]);
  if (e.retryAfter !== undefined) headers.push(['retry-after', String(e.retryAfter)]);
  return { status: e.status, headers, body };
}
