// The JavaScript `lamplighter build --isolation instance` wraps a handler in: it serves wasi:http itself.
import { noResponseSource } from './handler-entry.js';
import { ENGINE_CLI_VERSION, ENGINE_HTTP_VERSION } from './handler-wit.js';

/**
 * A module imported before the handler: it keeps the handler's `fetch` listeners, which the entry
 * calls itself (the engine's own fetch event is not built in).
 */
export const REUSABLE_PRELUDE = `export const listeners = [];
const engineAddEventListener = globalThis.addEventListener;
globalThis.addEventListener = function addEventListener(type, listener, options) {
  if (type === 'fetch') {
    if (listener) listeners.push(listener);
    return;
  }
  if (typeof engineAddEventListener === 'function') return engineAddEventListener.call(globalThis, type, listener, options);
};
`;

/**
 * The entry the bundle starts from. It exports `incomingHandler`, so componentize-js leaves the
 * engine's fetch event out and calls `handle` for every request: an instance can then answer any
 * number of requests (the engine's fetch event answers one per instance), which is what
 * `isolation = "instance"` needs.
 *
 * `handle` turns the wasi:http request into a `Request` whose body streams from the host,
 * calls the handler (`export default { fetch(request, env, ctx) }`, or the `fetch` listeners in
 * order until one responds), and streams the `Response` back through wasi:http. No response at
 * all (nothing registered, no listener responding, or something other than a Response) becomes an
 * empty 502 carrying {@link NO_RESPONSE_HEADER}, which the host turns into its JSON error; a
 * handler that throws is logged and answered 500. `waitUntil` promises are awaited after the
 * body is sent. Every resource a request opened is dropped before `handle` returns, so a reused
 * instance keeps no handles from one request to the next.
 */
export function reusableEntry(handlerPath: string, preludePath: string): string {
  return `import { listeners } from ${JSON.stringify(preludePath)};
import * as handlerModule from ${JSON.stringify(handlerPath)};
import { getEnvironment } from 'wasi:cli/environment@${ENGINE_CLI_VERSION}';
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@${ENGINE_HTTP_VERSION}';

const handler = handlerModule.default;
${noResponseSource('Response')}
const drop = (resource) => { if (resource) resource[Symbol.dispose]?.(); };
const closed = (err) => err?.payload?.tag === 'closed';

// Header values are byte strings: one byte, one code unit, both ways (UTF-8 agrees for ASCII).
const ASCII = /^[\\x00-\\x7f]*$/;
const encoder = new TextEncoder();
function latin1(bytes) {
  if (bytes.length <= 8192) return String.fromCharCode.apply(null, bytes);
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  return text;
}
function bytesOf(text) {
  if (ASCII.test(text)) return encoder.encode(text);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
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
        else controller.error(new TypeError('the request body failed: ' + (err?.payload?.val?.toDebugString?.() ?? String(err))));
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

// The handler's answer: a Response, or a promise of one.
function respond(request, waits) {
  if (handler && typeof handler.fetch === 'function') {
    const ctx = { waitUntil: (promise) => void waits.push(promise), passThroughOnException() {} };
    return handler.fetch(request, envOf(), ctx);
  }
  let answer;
  const event = {
    type: 'fetch',
    request,
    respondWith(response) {
      if (answer !== undefined) throw new TypeError('respondWith() was already called for this request');
      answer = response;
    },
    waitUntil(promise) {
      waits.push(promise);
    },
  };
  for (const listener of listeners) {
    if (typeof listener === 'function') listener.call(globalThis, event);
    else listener.handleEvent(event);
    if (answer !== undefined) return answer;
  }
  return noResponse(listeners.length === 0 ? 'no fetch handler is registered' : 'no fetch listener called respondWith()');
}

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

// Sends the head; gives the body's output stream.
function sendHead(response, out) {
  const entries = [];
  for (const entry of response.headers) {
    entry[1] = bytesOf(entry[1]);
    entries.push(entry);
  }
  const outgoing = new OutgoingResponse(Fields.fromList(entries));
  if (response.status !== 200) outgoing.setStatusCode(response.status);
  const body = outgoing.body();
  ResponseOutparam.set(out, { tag: 'ok', val: outgoing });
  return body;
}

// Sends the body, and ends it. One that breaks off is dropped unfinished: the host then fails the
// stream rather than ending it as if whole.
async function sendBody(response, body) {
  const output = body.write();
  try {
    if (response.body !== null) {
      const reader = response.body.getReader();
      for (let read = await reader.read(); !read.done; read = await reader.read()) writeAll(output, bytesIn(read.value));
    }
  } catch (err) {
    if (!closed(err)) console.error('the response body failed:', err);
    drop(output);
    drop(body);
    return;
  }
  drop(output);
  OutgoingBody.finish(body, undefined);
}

async function handle(incoming, out) {
  const opened = [];
  const waits = [];
  let response;
  try {
    const answer = respond(requestOf(incoming, opened), waits);
    response = checked(answer instanceof Promise ? await answer : answer, handler && typeof handler.fetch === 'function' ? 'fetch()' : 'respondWith()');
  } catch (err) {
    console.error(err);
    response = new Response('Internal Server Error\\n', { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' } });
  }
  try {
    await sendBody(response, sendHead(response, out));
  } catch (err) {
    // Before the head was sent (a header the host refuses): the host answers for a missing response.
    console.error('the response could not be sent:', err);
  } finally {
    for (const resource of opened) drop(resource);
    drop(incoming);
  }
  if (waits.length > 0) await Promise.allSettled(waits);
}

export const incomingHandler = { handle };
`;
}
