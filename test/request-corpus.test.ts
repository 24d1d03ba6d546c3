// A corpus of malformed, aborted and smuggling requests sent over raw sockets to a real node (a
// `lamplighter up` child) serving every runtime; after each one the node must still answer.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CliProcess, killAllChildren, REPO, wagiFixture, writeApp } from './cli-helpers.js';
import { buildFixtureComponent } from './component-helpers.js';

/** The function's timeout: an upgrade with a body must be answered well inside it. */
const TIMEOUT_MS = 4000;

/** Every runtime, by the path prefix it is routed on. */
const RUNTIMES = [
  { name: 'process (node)', prefix: '/proc' },
  { name: 'process (python)', prefix: '/py' },
  { name: 'wagi', prefix: '/wagi' },
  { name: 'component', prefix: '/comp' },
] as const;

const MUTE = "require('http').createServer((q, s) => s.end('ok')).on('upgrade', () => {}).listen(Number(process.env.PORT), '127.0.0.1')";

function manifest(): string {
  const limits = `[function.limits]\ntimeout = "${TIMEOUT_MS}ms"\n`;
  return [
    'name = "corpus"',
    `[[function]]\nname = "proc"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nready = "/healthz"\nroutes = ["/proc/..."]\n${limits}`,
    `[[function]]\nname = "py"\nruntime = "process"\ncommand = ["python3", "-u", "echo_server.py"]\nroutes = ["/py/..."]\n${limits}`,
    `[[function]]\nname = "wagi"\nsource = "echo.wasm"\nroutes = ["/wagi/..."]\n${limits}`,
    `[[function]]\nname = "comp"\nruntime = "component"\nsource = "comp.wasm"\nroutes = ["/comp/..."]\n${limits}`,
    // A child that takes upgrade handshakes and never answers them; one request at a time, so a
    // handshake given up on must give back its slot.
    `[[function]]\nname = "mute"\nruntime = "process"\ncommand = ["node", "-e", ${JSON.stringify(MUTE)}]\nroutes = ["/mute/..."]\n${limits}concurrency = 1\n[function.scale]\nmax = 1\n`,
  ].join('\n');
}

/** How a shape is sent: all at once, or the last part after a pause; then the socket may be closed. */
interface Shape {
  name: string;
  /** The bytes, given the runtime's path prefix. */
  bytes: (prefix: string) => string;
  /** What the first status line must say; undefined when any answer (or none) will do. */
  status?: number;
  /** How the client leaves once it has sent the bytes: `end` (FIN), `reset` (RST), or it waits for the answer. */
  close?: 'end' | 'reset';
}

const H = (prefix: string, method = 'POST', extra = ''): string => `${method} ${prefix}/corpus HTTP/1.1\r\nHost: corpus\r\n${extra}`;

/** The corpus: aborted bodies, malformed chunked bodies, upgrades with bodies, and the smuggling shapes. */
const SHAPES: Shape[] = [
  // Bodies the client gives up on.
  { name: 'content-length 42, 3 bytes, FIN', bytes: (p) => `${H(p)}Content-Length: 42\r\n\r\nabc`, close: 'end' },
  { name: 'content-length 42, 3 bytes, RST', bytes: (p) => `${H(p)}Content-Length: 42\r\n\r\nabc`, close: 'reset' },
  { name: 'chunked, half a chunk, FIN', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n5\r\nab`, close: 'end' },
  { name: 'chunked, a whole chunk and no end, RST', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n`, close: 'reset' },
  { name: 'expect 100-continue, then FIN', bytes: (p) => `${H(p)}Expect: 100-continue\r\nContent-Length: 10\r\n\r\n`, close: 'end' },
  { name: 'head cut short, FIN', bytes: (p) => `${H(p)}Content-Le`, close: 'end' },
  { name: 'GET, then FIN before the answer', bytes: (p) => `${H(p, 'GET')}\r\n`, close: 'end' },
  // Malformed chunked bodies, each after a good first chunk so the body is already on its way.
  { name: 'chunked, an empty size line', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n\r\n`, status: 400 },
  { name: 'chunked, a size that is not hex', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\nxyz\r\nbar\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunked, a bare LF after a size', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n3\nbar\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunked, a bare LF after data', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n3\r\nfoo\n0\r\n\r\n`, status: 400 },
  { name: 'chunked, a chunk longer than its size', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n3\r\nfoobar\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunked, a size past 12 hex digits', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n10000000000000000\r\n`, status: 400 },
  { name: 'chunked, a control character in an extension', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n3;a=\x01\r\nfoo\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunked, a trailer that is not a header', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n0\r\nnot a header\r\n\r\n`, status: 400 },
  // Upgrades.
  { name: 'upgrade h2c with a 15-byte body', bytes: (p) => `${H(p)}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 15\r\n\r\n0123456789abcde`, status: 200 },
  { name: 'upgrade h2c with 3 of 15 body bytes, FIN', bytes: (p) => `${H(p)}Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 15\r\n\r\nabc`, close: 'end' },
  { name: 'upgrade with a chunked body', bytes: (p) => `${H(p)}Connection: Upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`, status: 200 },
  { name: 'websocket handshake, then FIN', bytes: (p) => `${H(p, 'GET')}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`, close: 'end' },
  { name: 'websocket handshake, then RST', bytes: (p) => `${H(p, 'GET')}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, close: 'reset' },
  // Request smuggling (RFC 9112 §6.1, §6.3, §11.2).
  { name: 'CL.TE: content-length beside transfer-encoding', bytes: (p) => `${H(p)}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`, status: 400 },
  { name: 'TE.CL: transfer-encoding before content-length', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`, status: 400 },
  { name: 'TE.TE: a second transfer-encoding', bytes: (p) => `${H(p)}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'transfer-encoding: xchunked', bytes: (p) => `${H(p)}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'transfer-encoding: chunked, identity', bytes: (p) => `${H(p)}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'transfer-encoding: gzip, chunked', bytes: (p) => `${H(p)}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, status: 501 },
  { name: 'space before the colon of transfer-encoding', bytes: (p) => `${H(p)}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'transfer-encoding folded', bytes: (p) => `${H(p)}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'transfer-encoding with a vertical tab', bytes: (p) => `${H(p)}Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'two different content-lengths', bytes: (p) => `${H(p)}Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde`, status: 400 },
  { name: 'two equal content-lengths', bytes: (p) => `${H(p)}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, status: 400 },
  { name: 'content-length: +3', bytes: (p) => `${H(p)}Content-Length: +3\r\n\r\nabc`, status: 400 },
  { name: 'content-length: 3, 3', bytes: (p) => `${H(p)}Content-Length: 3, 3\r\n\r\nabc`, status: 400 },
  { name: 'content-length in hex', bytes: (p) => `${H(p)}Content-Length: 0x3\r\n\r\nabc`, status: 400 },
  { name: 'HTTP/1.0 with transfer-encoding', bytes: (p) => `POST ${p}/corpus HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'a bare LF in the head', bytes: (p) => `POST ${p}/corpus HTTP/1.1\nHost: corpus\r\nContent-Length: 0\r\n\r\n`, status: 400 },
  { name: 'a bare CR in a header value', bytes: (p) => `${H(p)}X-A: a\rContent-Length: 3\r\n\r\nabc`, status: 400 },
  { name: 'NUL in a header value', bytes: (p) => `${H(p)}X-A: a\x00b\r\nContent-Length: 0\r\n\r\n`, status: 400 },
  { name: 'two host headers', bytes: (p) => `${H(p, 'GET')}Host: other\r\n\r\n`, status: 400 },
  { name: 'no host header', bytes: (p) => `GET ${p}/corpus HTTP/1.1\r\n\r\n`, status: 400 },
  { name: 'absolute-form with user info', bytes: (p) => `GET http://user@corpus${p}/corpus HTTP/1.1\r\nHost: corpus\r\n\r\n`, status: 400 },
  { name: 'a space in the target', bytes: (p) => `GET ${p}/a b HTTP/1.1\r\nHost: corpus\r\n\r\n`, status: 400 },
  { name: 'HTTP/2.0 on the request line', bytes: (p) => `GET ${p}/corpus HTTP/2.0\r\nHost: corpus\r\n\r\n`, status: 505 },
  { name: 'a 20 KiB header', bytes: (p) => `${H(p, 'GET')}X-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`, status: 431 },
  { name: 'pipelined: a body that holds a request', bytes: (p) => `${H(p)}Connection: close\r\nContent-Length: 38\r\n\r\nGET ${p}/x HTTP/1.1\r\nHost: corpus\r\n\r\n` },
  { name: 'pipelined: a good request then a bad chunked one', bytes: (p) => `${H(p, 'GET')}\r\n${H(p)}Transfer-Encoding: chunked\r\n\r\nz\r\n`, status: 200 },
];

interface Outcome {
  /** Everything the node sent. */
  text: string;
  /** Milliseconds until the connection closed or the wait ran out. */
  ms: number;
}

/** Sends `bytes`; then closes as `close` says, or waits (at most `waitMs`) for the node to close or `enough` to match. */
function exchange(port: number, bytes: string, options: { close?: 'end' | 'reset'; waitMs: number; enough?: RegExp }): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, ms: Date.now() - started });
    };
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (options.enough?.test(text)) done();
    });
    socket.on('error', () => {});
    socket.on('close', done);
    socket.once('connect', () => {
      socket.write(Buffer.from(bytes, 'latin1'));
      // A moment for the head to be routed and the body handed to the function before the client leaves.
      if (options.close) setTimeout(() => (options.close === 'reset' ? socket.resetAndDestroy() : socket.end()), 150);
    });
    timer = setTimeout(done, options.waitMs);
  });
}

/** A good request must get its echo. */
async function assertAnswers(port: number, prefix: string, after: string, node: CliProcess): Promise<void> {
  const body = `alive after ${after}`;
  const bytes = `POST ${prefix}/echo HTTP/1.1\r\nHost: corpus\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  const { text } = await exchange(port, bytes, { waitMs: TIMEOUT_MS + 4000 });
  assert.ok(!node.exited, `the node exited after "${after}" to ${prefix}\nstderr: ${node.stderr}`);
  assert.match(text, /^HTTP\/1\.1 200 /, `a good request to ${prefix} after "${after}" got ${JSON.stringify(text.slice(0, 600))}`);
  assert.ok(text.includes(`\r\n\r\n${body}`) || text.includes(`\r\n${body}\r\n`), `the echo of ${prefix} after "${after}" is wrong: ${JSON.stringify(text.slice(-200))}`);
}

describe('request corpus against every runtime', () => {
  let dir: string;
  let node: CliProcess;
  let port: number;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-corpus-'));
    const app = await writeApp(path.join(dir, 'app'), manifest(), {
      'echo-server.mjs': path.join(REPO, 'test', 'fixtures', 'process', 'echo-server.mjs'),
      'echo_server.py': path.join(REPO, 'test', 'fixtures', 'process', 'echo_server.py'),
      'echo.wasm': wagiFixture('echo'),
      'comp.wasm': await buildFixtureComponent('echo.ts'),
    });
    node = new CliProcess(['up', app, '--port', '0', '--admin-port', '0', '--workers', '2']);
    const match = await node.waitForOutput(/Serving app 'corpus' on http:\/\/127\.0\.0\.1:(\d+)/, 120_000);
    port = Number(match[1]);
    // Every runtime answers once before the corpus starts (a component may still be preparing).
    for (const { prefix } of RUNTIMES) {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const { text } = await exchange(port, `GET ${prefix}/warm HTTP/1.1\r\nHost: corpus\r\nConnection: close\r\n\r\n`, { waitMs: 20_000 });
        if (/^HTTP\/1\.1 200 /.test(text)) break;
        assert.ok(Date.now() < deadline && !node.exited, `${prefix} never answered 200: ${JSON.stringify(text.slice(0, 300))}\nstderr: ${node.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  });

  after(async () => {
    killAllChildren();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const { name: runtime, prefix } of RUNTIMES) {
    test(`request corpus — ${runtime}: each malformed, aborted or smuggling request fails alone and the node answers the next`, { timeout: 180_000 }, async () => {
      for (const shape of SHAPES) {
        const outcome = await exchange(port, shape.bytes(prefix), {
          close: shape.close,
          waitMs: TIMEOUT_MS + 3000,
          // Upgrades are answered and the connection kept: a whole answer is enough.
          enough: shape.status === 200 ? /\r\n\r\n[\s\S]*$/ : undefined,
        });
        if (shape.status !== undefined) {
          assert.match(outcome.text, new RegExp(`^HTTP/1\\.1 ${shape.status} `), `"${shape.name}" to ${prefix} got ${JSON.stringify(outcome.text.slice(0, 300))}`);
          assert.ok(outcome.ms < TIMEOUT_MS, `"${shape.name}" to ${prefix} took ${outcome.ms} ms, past the function's timeout`);
        }
        await assertAnswers(port, prefix, shape.name, node);
      }
    });
  }

  test('request corpus — an upgrade the child never answers gets 504 at the function timeout, and its slot is free for the next', { timeout: 60_000 }, async () => {
    const outcome = await exchange(port, `GET /mute/ws HTTP/1.1\r\nHost: corpus\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, { waitMs: TIMEOUT_MS + 10_000 });
    assert.match(outcome.text, /^HTTP\/1\.1 504 /, `got ${JSON.stringify(outcome.text.slice(0, 300))}`);
    assert.match(outcome.text, /LL_TIMEOUT/);
    assert.ok(outcome.ms >= TIMEOUT_MS - 100 && outcome.ms < TIMEOUT_MS + 3000, `answered after ${outcome.ms} ms; the timeout is ${TIMEOUT_MS} ms`);
    const { text } = await exchange(port, 'GET /mute/plain HTTP/1.1\r\nHost: corpus\r\nConnection: close\r\n\r\n', { waitMs: TIMEOUT_MS + 4000 });
    assert.match(text, /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nok$/, `then got ${JSON.stringify(text.slice(0, 300))}`);
  });

  test('request corpus — the node is still running after the whole corpus, and stops cleanly', { timeout: 30_000 }, async () => {
    assert.ok(!node.exited, `the node exited during the corpus\nstderr: ${node.stderr}`);
    const { code, signal } = await node.stop('SIGTERM', 20_000);
    assert.equal(signal, null, `the node ended on ${signal}\nstderr: ${node.stderr}`);
    assert.equal(code, 0, `the node exited ${code}\nstderr: ${node.stderr}`);
    assert.doesNotMatch(node.stderr, /Unhandled|uncaught/i);
  });
});
