// Whether a request carries a body, from its framing headers alone: a runtime that knows there is
// none never makes the (empty) body stream, nor waits for its end.
import type { IncomingHttpHeaders } from 'node:http';

/** False for a request with neither content-length nor transfer-encoding (RFC 9112 §6.3), or a content-length of 0. */
export function hasRequestBody(request: { readonly headers: IncomingHttpHeaders }): boolean {
  const { headers } = request;
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length.trim() !== '0';
}
