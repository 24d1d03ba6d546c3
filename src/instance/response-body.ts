// Letting go of a response nobody will read: its body stream (a buffered body holds nothing open).
import type { InvocationResponse } from './index.js';

/** Destroys `response`'s body stream, so the instance behind it stops producing it. */
export function destroyResponseBody(response: InvocationResponse): void {
  const body = response.body;
  if (body && !Buffer.isBuffer(body)) body.destroy();
}
