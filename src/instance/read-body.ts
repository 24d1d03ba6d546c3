// Reads a request body into memory, refusing it once it passes a limit (and up front when its
// declared length already does), so an oversized body is never buffered whole.
import type { Readable } from 'node:stream';
import { ErrorCodes, LamplighterError } from '../errors/index.js';

/**
 * The whole of `body`, or BODY_TOO_LARGE as soon as it passes `limit` bytes (the stream is then
 * destroyed). `declared` is the content-length header, checked before reading; `limitName` says
 * in messages which limit it was, e.g. `limits.body_size`.
 */
export async function readBodyLimited(body: Readable, limit: number, declared: string | undefined, limitName: string): Promise<Buffer> {
  if (declared !== undefined && Number(declared) > limit) {
    throw new LamplighterError(ErrorCodes.BODY_TOO_LARGE, `The request body of ${declared} bytes is over the limit of ${limit} bytes (${limitName})`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > limit) {
      body.destroy();
      throw new LamplighterError(ErrorCodes.BODY_TOO_LARGE, `The request body is over the limit of ${limit} bytes (${limitName})`);
    }
    chunks.push(buf);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
}
