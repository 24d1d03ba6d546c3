// The JavaScript `lamplighter build --isolation instance` wraps a handler in: it serves wasi:http itself.
import { noResponseSource } from './handler-entry.js';
import { ENGINE_CLI_VERSION, ENGINE_HTTP_VERSION } from './handler-wit.js';

/**
 * The entry the bundle starts from. It exports `incomingHandler`, so componentize-js leaves the
 * engine's fetch event out and calls `handle` for every request: an instance can then answer any
 * number of requests (the engine's fetch event answers one per instance), which is what
 * `isolation = "instance"` needs.
 *
 * `handle` turns the wasi:http request into a `Request` whose body streams from the host,
 * calls the handler (`export default { fetch(request, env, ctx) }`, or the `fetch` listeners in
 * order until one responds), and streams the `Response` back through wasi:http. No response at
 * all (nothing registered, no listener responding, or something other than a Response) becomes the
 * 502 of {@link noResponseSource}, as in the default build; a
 * handler that throws, or gives a head the host refuses (another host may refuse a header the
 * engine allows, e.g. `connection`), is logged and answered 500. `waitUntil` promises are awaited after the body is sent. Every handle a request
 * opened is dropped before `handle` returns, on every path, so a reused instance keeps no handles
 * from one request to the next.
 */
export function reusableEntry(handlerPath: string, preludePath: string): string {
  return `import { listeners } from ${JSON.stringify(preludePath)};
import * as handlerModule from ${JSON.stringify(handlerPath)};
import { getEnvironment } from 'wasi:cli/environment@${ENGINE_CLI_VERSION}';
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@${ENGINE_HTTP_VERSION}';

const handler = handlerModule.default;
const callsFetch = handler && typeof handler.fetch === 'function';
${noResponseSource()}
const drop = (resource) => { if (resource) resource[Symbol.dispose]?.(); };
const closed = (err) => err?.payload?.tag === 'closed';

// What a stream call failed with, as text; the wasi:io error it carries is dropped.
function streamFailure(err) {
  const io = err?.payload?.tag === 'last-operation-failed' ? err.payload.val : undefined;
  if (!io) return err;
  try {
    return io.toDebugString();
  } finally {
    drop(io);
  }
}

// Header values are byte strings: one byte, one code unit, both ways (UTF-8 agrees for ASCII).
const ASCII = /^[\\x00-\\x7f]*$/;
const encoder = new TextEncoder();
function latin1(bytes) {
  if (bytes.length <= 8192) return String.fromCharCode.apply(null, bytes);
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  return text;
}
// The engine's Headers refuses a value that is not a byte string; the check below keeps a value
// from ever being cut to its low bytes if one got through.
function bytesOf(text) {
  if (ASCII.test(text)) return encoder.encode(text);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new TypeError('a response header value holds ' + JSON.stringify(text[i]) + ', which is not a byte: header values are byte strings');
    bytes[i] = code;
  }
  return bytes;
}

function methodOf(method) {
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

function urlOf(incoming, pairs) {
  const scheme = incoming.scheme();
  const name = scheme === undefined ? 'http' : scheme.tag === 'other' ? scheme.val : scheme.tag.toLowerCase();
  const authority = incoming.authority() ?? pairs.find((pair) => pair[0].toLowerCase() === 'host')?.[1] ?? 'localhost';
  return name + '://' + authority + (incoming.pathWithQuery() ?? '/');
}

// The request body, read from the host only as the handler asks for it (highWaterMark 0).
function bodyOf(incoming, opened) {
  const body = incoming.consume();
  const input = body.stream();
  opened.push(input, body);
  return new ReadableStream({
    pull(controller) {
      try {
        for (;;) {
          const chunk = input.blockingRead(65536n);
          if (chunk.length > 0) return controller.enqueue(chunk);
        }
      } catch (err) {
        if (closed(err)) controller.close();
        else controller.error(new TypeError('the request body failed: ' + streamFailure(err)));
      }
    },
  }, { highWaterMark: 0 });
}

// Every step here runs in the engine's interpreter: host calls and JS objects are kept few.
function requestOf(incoming, opened) {
  const fields = incoming.headers();
  const pairs = fields.entries();
  drop(fields);
  for (const pair of pairs) pair[1] = latin1(pair[1]);
  const method = methodOf(incoming.method());
  const body = method === 'GET' || method === 'HEAD' ? null : bodyOf(incoming, opened);
  return new Request(urlOf(incoming, pairs), { method, headers: pairs, body, duplex: 'half' });
}

// The environment cannot change for an instance's life; each request gets its own copy.
let environment;
function envOf() {
  environment ??= Object.fromEntries(getEnvironment());
  return { ...environment };
}

// The handler's answer: a Response, or a promise of one. Listeners get what the default build's
// listeners get: the request, respondWith (once) and waitUntil.
function respond(request, waits) {
  if (callsFetch) return handler.fetch(request, envOf(), { waitUntil: (promise) => void waits.push(promise) });
  let responded = false;
  let answer;
  const event = {
    type: 'fetch',
    request,
    respondWith(response) {
      if (responded) throw new TypeError('respondWith() was already called for this request');
      responded = true;
      answer = response;
    },
    waitUntil(promise) {
      waits.push(promise);
    },
  };
  for (const listener of listeners) {
    if (typeof listener === 'function') listener.call(globalThis, event);
    else listener.handleEvent(event);
    if (responded) return answer;
  }
  return noResponse(listeners.length === 0 ? 'no fetch handler is registered' : 'no fetch listener called respondWith()');
}

const failure = () => new Response('Internal Server Error\\n', { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' } });

// A small chunk goes in one call (blocking-write-and-flush takes up to 4096 bytes); a larger one
// as the host has room for it (check-write), waiting when it has none.
const SMALL_WRITE = 4096;
function writeAll(output, bytes) {
  if (bytes.length <= SMALL_WRITE) return output.blockingWriteAndFlush(bytes);
  let offset = 0;
  while (offset < bytes.length) {
    const room = Number(output.checkWrite());
    if (room === 0) {
      const ready = output.subscribe();
      ready.block();
      drop(ready);
      continue;
    }
    const end = Math.min(bytes.length, offset + room);
    output.write(bytes.subarray(offset, end));
    offset = end;
  }
  output.blockingFlush();
}

// A chunk of a response body as bytes: a Uint8Array, another view or an ArrayBuffer.
function bytesIn(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new TypeError('the response body gave ' + Object.prototype.toString.call(chunk) + ', not bytes');
}

// Sends the head and gives the body's handle. When it throws, nothing was sent and nothing it
// made is left open: the response-outparam is still unset.
function sendHead(response, out) {
  const entries = [];
  for (const entry of response.headers) {
    entry[1] = bytesOf(entry[1]);
    entries.push(entry);
  }
  const outgoing = new OutgoingResponse(Fields.fromList(entries));
  let body;
  try {
    if (response.status !== 200) outgoing.setStatusCode(response.status);
    body = outgoing.body();
    ResponseOutparam.set(out, { tag: 'ok', val: outgoing });
    return body;
  } catch (err) {
    drop(body);
    drop(outgoing);
    throw err;
  }
}

// Sends the head of \`response\`, or of a 500 when the host refuses it; false when not even that
// could be sent (then the outparam is set to an error).
function sendHeadOrFailure(response, out) {
  try {
    return sendHead(response, out);
  } catch (err) {
    console.error('the response could not be sent:', err?.payload ?? err);
  }
  response.body?.cancel().catch(() => undefined);
  try {
    return sendHead(failure(), out);
  } catch (err) {
    ResponseOutparam.set(out, { tag: 'err', val: { tag: 'internal-error', val: String(err?.payload?.tag ?? err) } });
    return undefined;
  }
}

// Sends the body (none for HEAD and for 204, 205 and 304: it is cancelled unread), and ends it. One
// that breaks off is cancelled and dropped unfinished: the host then fails the stream rather than
// ending it as if whole.
async function sendBody(response, body, withoutBody) {
  const output = body.write();
  let reader;
  try {
    if (response.body !== null && withoutBody) response.body.cancel().catch(() => undefined);
    else if (response.body !== null) {
      reader = response.body.getReader();
      for (let read = await reader.read(); !read.done; read = await reader.read()) writeAll(output, bytesIn(read.value));
    }
  } catch (err) {
    if (!closed(err)) console.error('the response body failed:', streamFailure(err));
    reader?.cancel(err).catch(() => undefined);
    drop(output);
    drop(body);
    return;
  }
  drop(output);
  try {
    OutgoingBody.finish(body, undefined);
  } catch (err) {
    console.error('the response body could not be ended:', err?.payload ?? err);
  }
}

// Awaits what waitUntil was given, and what that gave it in turn; a rejection is logged.
async function settle(waits) {
  for (let round = 0; waits.length > 0 && round < 10000; round++) {
    for (const result of await Promise.allSettled(waits.splice(0))) {
      if (result.status === 'rejected') console.error('a promise given to waitUntil() failed:', result.reason);
    }
  }
}

const NO_BODY_STATUS = new Set([204, 205, 304]);

async function handle(incoming, out) {
  const opened = [];
  const waits = [];
  let method = 'GET';
  let response;
  try {
    const request = requestOf(incoming, opened);
    method = request.method;
    response = checked(await respond(request, waits), callsFetch ? 'fetch()' : 'respondWith()');
  } catch (err) {
    console.error(err);
    response = failure();
  }
  try {
    const body = sendHeadOrFailure(response, out);
    if (body) await sendBody(response, body, method === 'HEAD' || NO_BODY_STATUS.has(response.status));
    await settle(waits);
  } finally {
    // After waitUntil work, which may still read the request.
    for (const resource of opened) drop(resource);
    drop(incoming);
  }
}

export const incomingHandler = { handle };
`;
}
