// Tests of the process runtime's HTTP/1.1 client: the response parser byte by byte, and the
// keep-alive pool against real sockets (reuse, resend, streaming, framing, bad responses).
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { ErrorCodes, LamplighterError } from '../src/errors/index.js';
import {
  MalformedResponseError,
  MAX_HEAD_BYTES,
  pipeUpgrade,
  proxyRequest,
  ResponseParser,
  UpstreamPool,
  type ResponseHead,
} from '../src/runtime/process/index.js';
import { makeInvocationRequest, readBody, withTimeout } from './instance-conformance.js';

interface Parsed {
  heads: ResponseHead[];
  body: Buffer;
  ended: boolean;
  used: number;
}

/** Feeds `wire` to a fresh parser in pieces of `step` bytes (all at once when 0). */
function parse(wire: string | Buffer, method = 'GET', step = 0): Parsed {
  const bytes = Buffer.isBuffer(wire) ? wire : Buffer.from(wire, 'latin1');
  const parser = new ResponseParser();
  const out: Parsed = { heads: [], body: Buffer.alloc(0), ended: false, used: 0 };
  const pieces: Buffer[] = [];
  parser.expect(method, {
    onHead: (h) => out.heads.push(h),
    onData: (c) => pieces.push(Buffer.from(c)),
    onEnd: () => {
      out.ended = true;
    },
  });
  const size = step === 0 ? bytes.length : step;
  for (let at = 0; at < bytes.length && !parser.done; at += size) out.used += parser.execute(bytes.subarray(at, at + size));
  out.body = Buffer.concat(pieces);
  return out;
}

function parseError(wire: string, method = 'GET'): string {
  try {
    parse(wire, method);
  } catch (err) {
    assert.ok(err instanceof MalformedResponseError, `not a MalformedResponseError: ${String(err)}`);
    return err.message;
  }
  assert.fail(`parsed without error: ${JSON.stringify(wire)}`);
}

describe('response parser', () => {
  test('a parser lets go of its exchange once the response has ended (an idle connection keeps no request alive)', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const parser = new ResponseParser();
    // Made in a function of its own, so no local of this one keeps the exchange alive.
    const start = (): WeakRef<object> => {
      const events = { onHead: () => {}, onData: () => {}, onEnd: () => {}, request: Buffer.alloc(1024) };
      parser.expect('GET', events);
      parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 'latin1'));
      return new WeakRef(events);
    };
    const ref = start();
    assert.ok(parser.done);
    // A WeakRef's target is kept until the current job ends: collect in a later one.
    await delay(0);
    gc();
    assert.equal(ref.deref(), undefined, 'the parser still holds the finished exchange');
  });

  test('content-length and chunked bodies parse the same whole or one byte at a time', () => {
    const cases: Array<[string, string]> = [
      ['HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello', 'hello'],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: t\r\n\r\n', 'hello, world'],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n', '0123456789'],
      ['HTTP/1.1 200 OK\ncontent-length: 2\n\nok', 'ok'],
    ];
    for (const [wire, body] of cases) {
      for (const step of [0, 1, 3]) {
        const r = parse(wire, 'GET', step);
        assert.equal(r.heads.length, 1, `${JSON.stringify(wire)} step ${step}`);
        assert.equal(r.heads[0]!.status, 200);
        assert.equal(r.body.toString(), body, `${JSON.stringify(wire)} step ${step}`);
        assert.ok(r.ended);
        assert.equal(r.used, Buffer.byteLength(wire, 'latin1'));
      }
    }
  });

  test('names are lower-cased, values trimmed; hop-by-hop headers and those connection names are left out', () => {
    const r = parse('HTTP/1.1 201 Created\r\nX-One:  a b \r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=7\r\nx-private: secret\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n');
    const head = r.heads[0]!;
    assert.equal(head.status, 201);
    assert.deepEqual(head.headers, [
      ['x-one', 'a b'],
      ['content-length', '0'],
    ]);
    assert.equal(head.keepAlive, true);
    assert.equal(head.keepAliveTimeoutMs, 7000);
  });

  test('framing: HEAD, 204 and 304 have no body; no length means until close; close and HTTP/1.0 end keep-alive', () => {
    const head = parse('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', 'HEAD');
    assert.equal(head.heads[0]!.framing, 'none');
    assert.ok(head.ended);
    for (const status of [204, 304]) assert.equal(parse(`HTTP/1.1 ${status} X\r\n\r\n`).heads[0]!.framing, 'none');

    const parser = new ResponseParser();
    const pieces: Buffer[] = [];
    let ended = false;
    let framing = '';
    parser.expect('GET', { onHead: (h) => (framing = h.framing), onData: (c) => pieces.push(c), onEnd: () => (ended = true) });
    parser.execute(Buffer.from('HTTP/1.1 200 OK\r\n\r\nuntil the end'));
    assert.equal(framing, 'close');
    assert.ok(parser.readsUntilClose && !ended);
    parser.finish();
    assert.ok(ended);
    assert.equal(Buffer.concat(pieces).toString(), 'until the end');

    assert.equal(parse('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').heads[0]!.keepAlive, false);
    assert.equal(parse('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').heads[0]!.keepAlive, false);
    assert.equal(parse('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').heads[0]!.keepAlive, true);
  });

  test('a transfer coding beside a content-length wins, drops the length and ends keep-alive', () => {
    const r = parse('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
    const head = r.heads[0]!;
    assert.equal(head.framing, 'chunked');
    assert.equal(head.keepAlive, false);
    assert.deepEqual(head.headers, []);
    assert.equal(r.body.toString(), 'ok');
  });

  test('informational responses are skipped; 101 to a plain request is refused', () => {
    const r = parse('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    assert.equal(r.heads.length, 1);
    assert.equal(r.heads[0]!.status, 200);
    assert.equal(r.body.toString(), 'ok');
    assert.match(parseError('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'), /101/);
  });

  test('bytes past the end of the response are not used', () => {
    const r = parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA');
    assert.equal(r.body.toString(), 'ok');
    assert.equal(r.used, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'.length);
  });

  test('malformed responses are refused with a message naming what is wrong', () => {
    const cases: Array<[string, RegExp]> = [
      ['HTTP/2 200 OK\r\n\r\n', /status line is not HTTP\/1\.x/],
      ['HTTP/1.1 20 OK\r\n\r\n', /status line/],
      ['HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', /valid name|no name/],
      ['HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', /valid name/],
      ['HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\r\n', /folded/],
      ['HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n', /'x-a' has a control character/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello', /content-length is not one valid number/],
      ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /content-length/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /chunk size .* not a hex number/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n', /longer than its size line/],
    ];
    for (const [wire, expected] of cases) assert.match(parseError(wire), expected, JSON.stringify(wire));
    const huge = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`;
    assert.match(parseError(huge), /larger than 64 KiB/);
    const same = parse('HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok');
    assert.equal(same.body.toString(), 'ok');
  });

  test('ambiguous framing ends keep-alive; a chunk size takes only spaces and tabs before its end', () => {
    assert.equal(parse('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n').heads[0]!.keepAlive, false);
    assert.equal(parse('HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n').heads[0]!.keepAlive, false);
    assert.equal(parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 \t;x=y\r\nok\r\n0\r\n\r\n').body.toString(), 'ok');
    assert.match(parseError('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\x0b\r\nx\r\n0\r\n\r\n'), /chunk size/);
  });

  test('a connection that closes mid-response is reported', () => {
    const parser = new ResponseParser();
    parser.expect('GET', { onHead: () => {}, onData: () => {}, onEnd: () => {} });
    parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    assert.throws(() => parser.finish(), /closed in the middle of the response body/);
  });
});

/** A loopback server that answers each request with `respond`, counting connections. */
async function rawServer(respond: (socket: net.Socket, request: string, index: number) => void): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  let index = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (d) => {
      buffered += d.toString('latin1');
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.slice(0, end + 4);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        const chunked = /transfer-encoding: chunked/i.test(head);
        let bodyEnd = end + 4 + length;
        if (chunked) {
          const last = buffered.indexOf('0\r\n\r\n', end + 4);
          if (last < 0) return;
          bodyEnd = last + 5;
        }
        if (buffered.length < bodyEnd) return;
        const request = buffered.slice(0, bodyEnd);
        buffered = buffered.slice(bodyEnd);
        respond(socket, request, index++);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const OPTIONS = { label: "Function 'f' instance 'i'", target: 'child' };
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

describe('upstream pool', () => {
  const closers: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const close of closers) await close();
  });

  async function setup(respond: Parameters<typeof rawServer>[0]): Promise<{ pool: UpstreamPool; server: Awaited<ReturnType<typeof rawServer>> }> {
    const server = await rawServer(respond);
    const pool = new UpstreamPool({ host: '127.0.0.1', port: server.port });
    closers.push(() => pool.destroy(), server.close);
    return { pool, server };
  }

  test('keep-alive: sequential requests share one connection; a small answer comes back whole', async () => {
    const { pool, server } = await setup((socket) => socket.write(OK));
    for (let i = 0; i < 5; i++) {
      const response = await proxyRequest(pool, makeInvocationRequest({ url: `/n/${i}` }), OPTIONS);
      assert.equal(response.status, 200);
      assert.ok(Buffer.isBuffer(response.body), 'a response read in one go is handed back as a Buffer');
      assert.equal((await readBody(response)).toString(), 'ok');
    }
    assert.equal(server.connections(), 1);
  });

  test('the request line and headers reach the child with x-forwarded-* and without hop-by-hop ones', async () => {
    let seen = '';
    const { pool } = await setup((socket, request) => {
      seen = request;
      socket.write(OK);
    });
    const request = makeInvocationRequest({
      method: 'DELETE',
      url: '/items/7?x=1',
      headers: { connection: 'keep-alive, x-drop', 'x-drop': '1', 'x-keep': 'yes', te: 'trailers', 'x-forwarded-for': '10.0.0.1' },
    });
    await readBody(await proxyRequest(pool, request, OPTIONS));
    assert.match(seen, /^DELETE \/items\/7\?x=1 HTTP\/1\.1\r\n/);
    assert.match(seen, /\r\nx-keep: yes\r\n/);
    assert.match(seen, /\r\nx-forwarded-for: 10\.0\.0\.1, 127\.0\.0\.1\r\n/);
    assert.match(seen, /\r\nx-forwarded-proto: http\r\n/);
    assert.doesNotMatch(seen, /x-drop|\r\nte:|\r\nconnection:/i);
  });

  test('a reused connection the child closed as the request went out is resent once, on a new one', async () => {
    const { pool, server } = await setup((socket, _request, index) => {
      // The second request meets a close, as when the child's keep-alive timer fires just then.
      if (index === 1) socket.destroy();
      else socket.write(OK);
    });
    await readBody(await proxyRequest(pool, makeInvocationRequest({ url: '/a' }), OPTIONS));
    const second = await proxyRequest(pool, makeInvocationRequest({ url: '/b' }), OPTIONS);
    assert.equal((await readBody(second)).toString(), 'ok');
    assert.equal(server.connections(), 2);
  });

  test('an idempotent request with a small body is resent whole; a POST is not resent', async () => {
    const bodies: string[] = [];
    const { pool } = await setup((socket, request, index) => {
      if (index === 0 || index === 2) {
        socket.destroy();
        return;
      }
      bodies.push(request.slice(request.indexOf('\r\n\r\n') + 4));
      socket.write(OK);
    });
    const put = await proxyRequest(pool, makeInvocationRequest({ method: 'PUT', url: '/p', body: 'payload-123' }), OPTIONS);
    assert.equal((await readBody(put)).toString(), 'ok');
    assert.deepEqual(bodies, ['payload-123']);
    await assert.rejects(proxyRequest(pool, makeInvocationRequest({ method: 'POST', url: '/p', body: 'once' }), OPTIONS), (err: unknown) => {
      assert.ok(err instanceof LamplighterError);
      assert.equal(err.code, ErrorCodes.UPSTREAM_UNAVAILABLE);
      assert.match(err.message, /closed the connection on child before answering/);
      return true;
    });
  });

  test('a client connection header cannot take the framing of the body away (no request smuggled in a body)', async () => {
    const seen: string[] = [];
    const { pool } = await setup((socket, request) => {
      seen.push(request);
      socket.write(OK);
    });
    const inner = 'GET /admin HTTP/1.1\r\nhost: x\r\n\r\n';
    const request = makeInvocationRequest({ method: 'POST', url: '/public', headers: { connection: 'content-length, host' }, body: inner });
    await readBody(await proxyRequest(pool, request, OPTIONS));
    await delay(50);
    assert.equal(seen.length, 1, `the child read ${seen.length} requests`);
    assert.match(seen[0]!, new RegExp(`\r\ncontent-length: ${inner.length}\r\n`));
    assert.match(seen[0]!, /\r\nhost: 127\.0\.0\.1\r\n/);
    assert.ok(seen[0]!.endsWith(inner));
  });

  test('closing the pool fails the requests in flight; none is sent again', async () => {
    let received = 0;
    const { pool } = await setup(() => {
      received += 1; // never answers
    });
    const pending = proxyRequest(pool, makeInvocationRequest({ url: '/slow' }), OPTIONS);
    await delay(50);
    pool.destroy();
    await assert.rejects(withTimeout(pending, 5_000, 'the failed request'), (err: unknown) => err instanceof LamplighterError && /shutting down/.test(err.message));
    await delay(50);
    assert.equal(received, 1);
    assert.equal(pool.connections, 0);
  });

  test('a chunked request body is sent chunked and arrives intact', async () => {
    let seen = '';
    const { pool } = await setup((socket, request) => {
      seen = request;
      socket.write(OK);
    });
    const request = makeInvocationRequest({ method: 'POST', url: '/up', headers: { 'transfer-encoding': 'chunked' }, body: 'abcdef' });
    await readBody(await proxyRequest(pool, request, OPTIONS));
    assert.match(seen, /\r\ntransfer-encoding: chunked\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n$/);
  });

  test('a body that arrives over time streams, chunk by chunk, and the connection is reused after', async () => {
    const { pool, server } = await setup((socket, _request, index) => {
      if (index > 0) return void socket.write(OK);
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent1\r\n');
      setTimeout(() => socket.write('6\r\nevent2\r\n'), 50);
      setTimeout(() => socket.write('0\r\n\r\n'), 100);
    });
    const response = await proxyRequest(pool, makeInvocationRequest({ url: '/events' }), OPTIONS);
    assert.ok(response.body instanceof Readable, 'an unfinished body is a stream');
    const seen: string[] = [];
    for await (const chunk of response.body as Readable) seen.push(String(chunk));
    assert.deepEqual(seen, ['event1', 'event2']);
    await readBody(await proxyRequest(pool, makeInvocationRequest({ url: '/again' }), OPTIONS));
    assert.equal(server.connections(), 1);
  });

  test('a response body cut off by the child while nobody listens for its errors raises nothing uncaught', async () => {
    const { pool } = await setup((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart');
      setTimeout(() => socket.destroy(), 50);
    });
    const response = await proxyRequest(pool, makeInvocationRequest({ url: '/cut' }), OPTIONS);
    const body = response.body as Readable;
    assert.ok(body instanceof Readable);
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      // The reader has let go of its error listener (its client left), but not of the stream.
      await new Promise<void>((resolve) => body.once('close', () => resolve()));
      await delay(20);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    assert.deepEqual(uncaught, []);
    assert.ok(body.errored, 'the body still reports its failure to a reader');
  });

  test('a request body that fails after the child has answered raises nothing uncaught', async () => {
    // The child answers as soon as the head arrives; the client's body is still coming.
    const early = net.createServer((socket) => {
      socket.once('data', () => socket.write(OK));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => early.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => early.close(() => resolve())));
    const pool = new UpstreamPool({ host: '127.0.0.1', port: (early.address() as net.AddressInfo).port });
    closers.push(() => pool.destroy());
    const body = new Readable({ read() {} });
    const request = { ...makeInvocationRequest({ method: 'POST', url: '/early', headers: { 'content-length': '100' } }), body };
    const errors: unknown[] = [];
    const onUncaught = (err: unknown): void => void errors.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      body.push('part');
      const response = await withTimeout(proxyRequest(pool, request, OPTIONS), 5_000, 'the early answer');
      assert.equal((await readBody(response)).toString(), 'ok');
      // The exchange has let go of the body; its source fails later (the client left).
      body.destroy(new Error('the client went away'));
      await delay(20);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    assert.deepEqual(errors, []);
  });

  test('a large body read slowly arrives byte for byte (backpressure, not buffering without bound); the connection reads again for the next request', async () => {
    const size = 8 * 1024 * 1024;
    const payload = Buffer.alloc(size, 7);
    payload.write('end', size - 3);
    const { pool, server } = await setup((socket, _request, index) => {
      if (index > 0) return void socket.write(OK);
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
      socket.write(payload);
    });
    const response = await proxyRequest(pool, makeInvocationRequest({ url: '/big' }), OPTIONS);
    const stream = response.body as Readable;
    const parts: Buffer[] = [];
    let mostBuffered = 0;
    for await (const chunk of stream) {
      parts.push(chunk as Buffer);
      if (parts.length % 16 === 0) {
        await delay(1);
        mostBuffered = Math.max(mostBuffered, stream.readableLength);
      }
    }
    const got = Buffer.concat(parts);
    assert.equal(got.length, size);
    assert.ok(got.equals(payload));
    // Without backpressure the socket runs ahead of this reader by most of the 8 MiB.
    assert.ok(mostBuffered < 256 * 1024, `the body stream held ${mostBuffered} bytes ahead of its reader`);
    // The connection was paused for the slow reader; the next exchange on it must read again.
    const next = await withTimeout(proxyRequest(pool, makeInvocationRequest({ url: '/after' }), OPTIONS), 5000, 'the second request on the paused connection');
    assert.equal((await readBody(next)).toString(), 'ok');
    assert.equal(server.connections(), 1);
  });

  test('abandoning the request closes the upstream connection, before or after the headers', async () => {
    let closed = 0;
    const { pool } = await setup((socket, _request, index) => {
      socket.on('close', () => closed++);
      if (index === 1) socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
      // index 0: never answers
    });
    const waiting = makeInvocationRequest({ url: '/slow' });
    const controller = new AbortController();
    Object.defineProperty(waiting, 'signal', { value: controller.signal });
    const pending = proxyRequest(pool, waiting, OPTIONS);
    await delay(50);
    controller.abort();
    await assert.rejects(pending, (err: unknown) => err instanceof LamplighterError && /aborted before it finished/.test(err.message));
    const streaming = await proxyRequest(pool, makeInvocationRequest({ url: '/stream' }), OPTIONS);
    (streaming.body as Readable).destroy();
    await withTimeout(
      (async () => {
        while (closed < 2) await delay(10);
      })(),
      5_000,
      'both upstream connections to close',
    );
    assert.equal(pool.connections, 0);
  });

  test('a malformed answer becomes BAD_HANDLER_RESPONSE naming the fault; the connection is not reused', async () => {
    const { pool, server } = await setup((socket, _request, index) => {
      socket.write(index === 0 ? 'HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n' : OK);
    });
    await assert.rejects(proxyRequest(pool, makeInvocationRequest({ url: '/bad' }), OPTIONS), (err: unknown) => {
      assert.ok(err instanceof LamplighterError);
      assert.equal(err.code, ErrorCodes.BAD_HANDLER_RESPONSE);
      assert.equal(err.status, 502);
      assert.match(err.message, /Function 'f' instance 'i' sent a malformed response: its content-length is not one valid number/);
      return true;
    });
    assert.equal((await readBody(await proxyRequest(pool, makeInvocationRequest({ url: '/good' }), OPTIONS))).toString(), 'ok');
    assert.equal(server.connections(), 2);
  });

  test('an answer that comes before the whole request body is passed on at once, and its connection retired', async () => {
    // Answers as soon as the head arrives; the client's body never finishes.
    const earlyServer = net.createServer((socket) => {
      socket.once('data', () => socket.write('HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n'));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => earlyServer.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => earlyServer.close(() => resolve())));
    const pool = new UpstreamPool({ host: '127.0.0.1', port: (earlyServer.address() as net.AddressInfo).port });
    closers.push(() => pool.destroy());
    const request = makeInvocationRequest({ method: 'POST', url: '/upload', headers: { 'content-length': String(10 * 1024 * 1024) } });
    const stalled = new Readable({ read() {} });
    stalled.push(Buffer.alloc(64 * 1024));
    Object.defineProperty(request, 'body', { value: stalled });
    const response = await withTimeout(proxyRequest(pool, request, OPTIONS), 5_000, 'the early answer');
    assert.equal(response.status, 413);
    await delay(20);
    assert.equal(pool.connections, 0, 'a connection with half a request on it is not reused');
    assert.equal(stalled.listenerCount('data'), 0, 'the client body is let go');
  });
});

describe('upgrade proxy', () => {
  /**
   * A child that answers an upgrade request as an ordinary one (200, kept alive), 50 ms after it
   * arrives, and records every byte it receives — node:http would not parse bytes after an
   * upgrade request's head, so a raw server is what can tell whether they were sent.
   */
  async function ordinaryChild(): Promise<{ port: number; received: () => string; close: () => Promise<void> }> {
    let received = '';
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
      setTimeout(() => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nhello /first'), 50);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      port: (server.address() as net.AddressInfo).port,
      received: () => received,
      close: () => {
        for (const socket of sockets) socket.destroy();
        return new Promise((resolve) => server.close(() => resolve()));
      },
    };
  }

  /** A client connection whose raw bytes are handed to pipeUpgrade as the gateway would. */
  async function upgradeThrough(port: number, headers: Record<string, string>, head: Buffer): Promise<{ client: net.Socket; received: () => string }> {
    const listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      const request = makeInvocationRequest({ url: '/first', headers });
      void pipeUpgrade({ request, socket, head }, { port, label: 'test child' });
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
    let text = '';
    client.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    client.once('close', () => listener.close());
    return { client, received: () => text };
  }

  test('upgrade proxy — a child that refuses the upgrade has its answer relayed and the connection ends: no tunnel around the gateway', async () => {
    const child = await ordinaryChild();
    try {
      const smuggled = Buffer.from('GET /second HTTP/1.1\r\nhost: a\r\nx-forwarded-for: 10.0.0.1\r\n\r\n', 'latin1');
      const { client, received } = await upgradeThrough(child.port, { connection: 'upgrade', upgrade: 'anything' }, smuggled);
      await withTimeout(new Promise((resolve) => client.once('close', resolve)), 5000, 'the connection ends with the refusal');
      assert.match(received(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nhello \/first$/);
      assert.match(child.received(), /^GET \/first HTTP\/1\.1\r\n[\s\S]*x-forwarded-for: 127\.0\.0\.1\r\n/);
      assert.ok(!child.received().includes('/second'), 'bytes sent after the upgrade request never reach the child');
    } finally {
      await child.close();
    }
  });

  test('upgrade proxy — after 101 the bytes sent behind the request, and then both directions, flow raw', async () => {
    const server = http.createServer((_req, res) => res.end('not an upgrade'));
    server.on('upgrade', (_req, socket: net.Socket, head: Buffer) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n');
      if (head.length > 0) socket.write(head);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const { client, received } = await upgradeThrough(port, { connection: 'upgrade', upgrade: 'echo' }, Buffer.from('early;'));
    try {
      const until = Date.now() + 5000;
      while (!received().includes('early;') && Date.now() < until) await delay(10);
      assert.match(received(), /^HTTP\/1\.1 101 Switching Protocols\r\n[\s\S]*\r\n\r\nearly;$/);
      client.write('ping');
      while (!received().endsWith('ping') && Date.now() < until) await delay(10);
      assert.ok(received().endsWith('early;ping'), received());
    } finally {
      client.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
