// Tests of forwarding between nodes (src/cluster/forwarder.ts) against real servers on loopback:
// what arrives, streaming both ways, keep-alive, aborts, unreachable and failing peers, upgrades.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { forwardChannel, HOP_HEADER, isPeerUnreachable, NODE_HEADER, PeerForwarder, type ForwardEvent } from '../src/cluster/index.js';
import { ErrorCodes, LamplighterError } from '../src/errors/index.js';
import { repoRoot, startTestNode, type TestNode } from '../src/testing/index.js';
import { TIME_LEFT_HEADER, type InvocationRequest } from '../src/instance/index.js';
import { headerOf, readBody, withTimeout } from './instance-conformance.js';

const MiB = 1024 * 1024;
const servers: net.Server[] = [];
const forwarders: PeerForwarder[] = [];

after(async () => {
  await Promise.all(forwarders.map((f) => f.close()));
  for (const server of servers) {
    (server as http.Server).closeAllConnections?.();
    server.close();
  }
});

/** Starts `server` on a free loopback port, closed after the tests; resolves with `host:port`. */
async function listen(server: net.Server): Promise<string> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function forwarder(options: { maxSocketsPerPeer?: number; connectTimeoutMs?: number } = {}): PeerForwarder {
  const f = new PeerForwarder({ node: 'node-a', ...options });
  forwarders.push(f);
  return f;
}

interface RequestInit {
  method?: string;
  url?: string;
  headers?: IncomingHttpHeaders;
  body?: Readable;
  signal?: AbortSignal;
  remoteAddress?: string;
  deadline?: number;
}

let nextId = 0;

/** A loopback listener that never accepts; prints its port. */
const NOT_ACCEPTING = "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(20)";

function hasPython(): boolean {
  return spawnSync('python3', ['-c', ''], { stdio: 'ignore' }).status === 0;
}

/** An InvocationRequest as the gateway would hand it over. */
function invocation(init: RequestInit = {}): InvocationRequest {
  const url = init.url ?? '/';
  return {
    id: `r${++nextId}`,
    method: init.method ?? 'GET',
    url,
    headers: { host: 'app.example', ...init.headers },
    body: init.body ?? Readable.from([]),
    remoteAddress: init.remoteAddress ?? '198.51.100.7',
    host: 'app.example',
    serverPort: 8080,
    route: { pattern: '/...', scriptName: '', pathInfo: url.split('?')[0]! },
    signal: init.signal ?? new AbortController().signal,
    ...(init.deadline === undefined ? {} : { deadline: init.deadline }),
  };
}

/**
 * `request` as the gateway's own request type presents it: an `aborted` flag and an abort hook,
 * whose signal nobody should need.
 */
function withAbortHook(request: InvocationRequest): InvocationRequest {
  const signal = request.signal;
  return {
    ...request,
    get signal(): AbortSignal {
      throw new Error('the signal was asked for although the request has an abort hook');
    },
    get aborted(): boolean {
      return signal.aborted;
    },
    onAbort(listener: () => void): () => void {
      signal.addEventListener('abort', listener, { once: true });
      return () => signal.removeEventListener('abort', listener);
    },
  };
}

/** A body of `total` bytes in 64 KiB chunks, made as it is read; after `gateAt` bytes it waits for `gate`. */
function generatedBody(total: number, gateAt: number, gate: Promise<unknown>): Readable & { produced: number } {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let produced = 0;
  let waiting = false;
  const body = new Readable({
    read() {
      if (waiting) return;
      if (produced >= total) return void this.push(null);
      if (produced >= gateAt && gate !== undefined) {
        waiting = true;
        void gate.then(() => {
          gateAt = Infinity;
          waiting = false;
          produced += chunk.length;
          body.produced = produced;
          this.push(chunk);
        });
        return;
      }
      produced += chunk.length;
      body.produced = produced;
      this.push(chunk);
    },
  }) as Readable & { produced: number };
  body.produced = 0;
  return body;
}

/** A promise with its resolver outside. */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => (fire = resolve));
  return { promise, fire };
}

/** An address nothing listens on: a port just freed. */
async function deadAddress(): Promise<string> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

describe('forwarder — requests', () => {
  test('forwarder — method, path, query, Host and end-to-end headers arrive; hop header set; hop-by-hop gone', async () => {
    let seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string } | undefined;
    const address = await listen(
      http.createServer(async (req, res) => {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() };
        res.writeHead(201, { 'x-reply': 'yes', [NODE_HEADER]: 'node-b', 'keep-alive': 'timeout=30', 'content-type': 'text/plain' });
        res.end('made');
      }),
    );
    const response = await forwarder().forward(
      address,
      invocation({
        method: 'PUT',
        url: '/a/b?x=1&y=%20two',
        headers: {
          'content-length': '5',
          connection: 'keep-alive, x-secret',
          'x-secret': 'for this hop only',
          'keep-alive': 'timeout=5',
          te: 'trailers',
          'proxy-authorization': 'Basic Zm9vOmJhcg==',
          'x-custom': 'kept',
          'x-forwarded-for': '203.0.113.9',
          'x-forwarded-proto': 'https',
        },
        body: Readable.from([Buffer.from('hello')]),
        deadline: performance.now() + 5_000,
      }),
    );
    assert.equal(response.status, 201);
    assert.equal((await readBody(response)).toString(), 'made');
    assert.equal(headerOf(response, 'x-reply'), 'yes');
    assert.equal(headerOf(response, NODE_HEADER), 'node-b');
    assert.equal(headerOf(response, 'keep-alive'), undefined, 'a hop-by-hop response header was relayed');
    assert.ok(seen);
    assert.equal(seen.method, 'PUT');
    assert.equal(seen.url, '/a/b?x=1&y=%20two');
    assert.equal(seen.body, 'hello');
    const h = seen.headers;
    assert.equal(h.host, 'app.example');
    assert.equal(h[HOP_HEADER], 'node-a');
    // The time left of the deadline goes with it, so the peer does not start a fresh timeout.
    const left = Number(h[TIME_LEFT_HEADER]);
    assert.ok(left > 4_000 && left <= 5_000, `time left ${h[TIME_LEFT_HEADER]}`);
    assert.equal(h['x-custom'], 'kept');
    for (const gone of ['x-secret', 'keep-alive', 'te', 'proxy-authorization']) assert.equal(h[gone], undefined, `${gone} was forwarded`);
    assert.equal(h.connection, undefined);
    // Each hop appends the address it got the request from, as a chain of proxies does.
    assert.equal(h['x-forwarded-for'], '203.0.113.9, 198.51.100.7');
    assert.equal(h['x-forwarded-host'], 'app.example');
    assert.equal(h['x-forwarded-proto'], 'http');
  });

  test('forwarder — an 8 MiB request body streams: the peer reads it before the client has sent it all', async () => {
    const firstChunk = signal();
    let received = 0;
    const address = await listen(
      http.createServer((req, res) => {
        req.on('data', (c: Buffer) => {
          if (received === 0) firstChunk.fire();
          received += c.length;
        });
        req.on('end', () => res.end(String(received)));
      }),
    );
    // The body stops after 1 MiB until the peer has seen its first bytes: a forwarder that
    // buffered the whole body first would wait for ever.
    const body = generatedBody(8 * MiB, 1 * MiB, firstChunk.promise);
    const response = await withTimeout(
      forwarder().forward(address, invocation({ method: 'POST', headers: { 'content-length': String(8 * MiB) }, body })),
      10_000,
      'the forwarded upload',
    );
    assert.equal((await readBody(response)).toString(), String(8 * MiB));
    assert.equal(body.produced, 8 * MiB);
  });

  test('forwarder — a chunked request body of unknown length streams through', async () => {
    const address = await listen(
      http.createServer(async (req, res) => {
        let n = 0;
        for await (const c of req) n += (c as Buffer).length;
        res.end(`${req.headers['transfer-encoding']} ${n}`);
      }),
    );
    const body = generatedBody(2 * MiB, Infinity, Promise.resolve());
    const response = await forwarder().forward(address, invocation({ method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body }));
    assert.equal((await readBody(response)).toString(), `chunked ${2 * MiB}`);
  });

  test('forwarder — an 8 MiB response streams: resolved at its head, read while the peer still writes, held back by a slow reader', async () => {
    const clientGotBytes = signal();
    let written = 0;
    const address = await listen(
      http.createServer(async (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(8 * MiB) });
        const piece = Buffer.alloc(64 * 1024, 0x62);
        while (written < 8 * MiB) {
          // Past 1 MiB the peer waits for the client to have read some of the body.
          if (written === MiB) await clientGotBytes.promise;
          written += piece.length;
          if (!res.write(piece)) await once(res, 'drain');
        }
        res.end();
      }),
    );
    const response = await withTimeout(forwarder().forward(address, invocation()), 5_000, 'the response head');
    assert.ok(response.body instanceof Readable, 'a large response should stream');
    assert.ok(written < 8 * MiB, 'the forward resolved only after the peer wrote everything');
    let total = 0;
    let wrongByte = false;
    await withTimeout(
      (async () => {
        for await (const c of response.body as Readable) {
          const chunk = c as Buffer;
          if (total === 0) {
            clientGotBytes.fire();
            // A slow reader: the peer has to wait (backpressure) rather than the hop reading it all in.
            await delay(300);
            assert.ok(written < 8 * MiB, `the peer wrote all ${written} bytes while the client read nothing`);
          }
          total += chunk.length;
          if (chunk.some((b) => b !== 0x62)) wrongByte = true;
        }
      })(),
      10_000,
      'reading the streamed response',
    );
    assert.equal(total, 8 * MiB);
    assert.equal(wrongByte, false);
  });

  test('forwarder — 50 sequential requests share one keep-alive connection', async () => {
    let connections = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      res.end('ok');
    });
    server.on('connection', () => connections++);
    const address = await listen(server);
    const f = forwarder();
    for (let i = 0; i < 50; i++) {
      const response = await f.forward(address, invocation({ url: `/n/${i}` }));
      assert.equal((await readBody(response)).toString(), 'ok');
    }
    assert.equal(connections, 1);
    assert.equal(f.connections(address), 1);
  });

  test('forwarder — at most maxSocketsPerPeer requests go to a peer at once; the rest wait their turn', async () => {
    let inFlight = 0;
    let most = 0;
    let connections = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      inFlight++;
      most = Math.max(most, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end(req.url);
      }, 30);
    });
    server.on('connection', () => connections++);
    const address = await listen(server);
    const f = forwarder({ maxSocketsPerPeer: 2 });
    const answers = await withTimeout(
      Promise.all(Array.from({ length: 6 }, (_, i) => f.forward(address, invocation({ url: `/${i}` })).then(readBody))),
      5_000,
      'six requests over two connections',
    );
    assert.deepEqual(answers.map(String), ['/0', '/1', '/2', '/3', '/4', '/5']);
    assert.equal(most, 2);
    assert.equal(connections, 2);
  });

  for (const style of ['signal', 'abort hook'] as const) {
    test(`forwarder — a client abort before the answer closes the request on the peer (${style})`, async () => {
      const arrived = signal();
      const closedOnPeer = signal();
      const address = await listen(
        http.createServer((_req, res) => {
          res.on('close', closedOnPeer.fire);
          arrived.fire(); // and never answers
        }),
      );
      const controller = new AbortController();
      const request = style === 'signal' ? invocation({ signal: controller.signal }) : withAbortHook(invocation({ signal: controller.signal }));
      const pending = forwarder().forward(address, request);
      await withTimeout(arrived.promise, 5_000, 'the request reaching the peer');
      controller.abort();
      await assert.rejects(withTimeout(pending, 5_000, 'the forward after the abort'), (err: unknown) => {
        assert.ok(err instanceof LamplighterError && err.code === ErrorCodes.TIMEOUT && !isPeerUnreachable(err), String(err));
        return true;
      });
      await withTimeout(closedOnPeer.promise, 5_000, 'the peer seeing the request closed');
    });
  }

  test('forwarder — a client abort while the response streams closes it on the peer', async () => {
    const closedOnPeer = signal();
    const address = await listen(
      http.createServer((req, res) => {
        req.resume();
        res.on('close', closedOnPeer.fire);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: one\n\n'); // and never ends
      }),
    );
    const controller = new AbortController();
    const response = await forwarder().forward(address, invocation({ signal: controller.signal }));
    const body = response.body as Readable;
    body.on('error', () => {});
    const [first] = (await once(body, 'data')) as [Buffer];
    assert.equal(first.toString(), 'data: one\n\n');
    controller.abort();
    await withTimeout(closedOnPeer.promise, 5_000, 'the peer seeing the stream closed');
  });

  test('forwarder — a peer that is down is unreachable, for any method, naming the peer', async () => {
    const f = forwarder();
    const address = await deadAddress();
    for (const method of ['GET', 'POST']) {
      const body = method === 'POST' ? Readable.from([Buffer.from('data')]) : undefined;
      const headers = method === 'POST' ? { 'content-length': '4' } : {};
      await assert.rejects(f.forward(address, invocation({ method, headers, body }), { peer: 'node-b' }), (err: unknown) => {
        assert.ok(isPeerUnreachable(err), `${method}: not unreachable: ${String(err)}`);
        assert.equal(err.code, ErrorCodes.UPSTREAM_UNAVAILABLE);
        assert.equal(err.address, address);
        assert.match(err.message, /node 'node-b'/);
        assert.match(err.message, /ECONNREFUSED/);
        return true;
      });
    }
  });

  test('forwarder — a peer that accepts no connection in time is unreachable (connect timeout)', { skip: !hasPython() && 'needs python3' }, async () => {
    // A listening socket that never accepts, with room for one connection in its queue: once a
    // filler takes it, the kernel drops further SYNs and connecting hangs. (Node always accepts.)
    const listener = spawn('python3', ['-c', NOT_ACCEPTING], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await withTimeout(once(listener.stdout, 'data'), 5_000, 'python3 listening')) as [Buffer];
      const port = Number(line.toString().trim());
      const filler = net.connect(port, '127.0.0.1').on('error', () => {});
      await once(filler, 'connect');
      const started = performance.now();
      await assert.rejects(
        forwarder({ connectTimeoutMs: 200 }).forward(`127.0.0.1:${port}`, invocation({ method: 'POST', headers: { 'content-length': '0' } })),
        (err: unknown) => {
          assert.ok(isPeerUnreachable(err), `not unreachable: ${String(err)}`);
          assert.match(err.message, /ETIMEDOUT/);
          return true;
        },
      );
      assert.ok(performance.now() - started < 2_000);
      filler.destroy();
    } finally {
      listener.kill();
    }
  });

  test('forwarder — a peer that closes before answering a POST fails with a 502, not unreachable (it may have acted)', async () => {
    const address = await listen(
      net.createServer((socket) => {
        socket.once('data', () => socket.destroy());
      }),
    );
    await assert.rejects(
      forwarder().forward(address, invocation({ method: 'POST', headers: { 'content-length': '2' }, body: Readable.from([Buffer.from('hi')]) }), { peer: 'node-b' }),
      (err: unknown) => {
        assert.ok(!isPeerUnreachable(err), 'a request the peer received was taken for unreachable');
        assert.ok(err instanceof LamplighterError);
        assert.equal(err.status, 502);
        assert.match(err.message, /^Node 'node-b' \(127\.0\.0\.1:\d+\) failed to answer forwarded request r\d+: the connection closed/);
        return true;
      },
    );
  });

  test('forwarder — a peer that closes in the middle of a response: the body errors, nothing crashes', async () => {
    const address = await listen(
      net.createServer((socket) => {
        socket.once('data', () => {
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n');
          socket.write(Buffer.alloc(70_000, 0x63));
          setTimeout(() => socket.destroy(), 50);
        });
      }),
    );
    const f = forwarder();
    const response = await f.forward(address, invocation());
    assert.equal(response.status, 200);
    await assert.rejects(readBody(response));
    // A second response whose body nobody reads fails the same way without an unhandled error.
    const unread = await f.forward(address, invocation());
    assert.equal(unread.status, 200);
    await delay(150);
  });

  test('forwarder — a kept-alive connection the peer closes as a GET goes out is retried once on a new one', async () => {
    let connections = 0;
    const address = await listen(
      net.createServer((socket) => {
        connections++;
        let requests = 0;
        socket.on('data', () => {
          requests++;
          // The second request on a connection meets it closing, as when the peer's keep-alive ran out.
          if (requests === 2) return void socket.destroy();
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        });
      }),
    );
    const f = forwarder();
    assert.equal((await readBody(await f.forward(address, invocation()))).toString(), 'ok');
    const second = await f.forward(address, invocation());
    assert.equal(second.status, 200);
    assert.equal((await readBody(second)).toString(), 'ok');
    assert.equal(connections, 2);
  });

  test('forwarder — a connection the peer closed while idle is not used again', async () => {
    let connections = 0;
    const address = await listen(
      net.createServer((socket) => {
        connections++;
        socket.once('data', () => {
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
          setTimeout(() => socket.end(), 20);
        });
      }),
    );
    const f = forwarder();
    await readBody(await f.forward(address, invocation()));
    await delay(100);
    // A POST is never sent twice: it must go out on a new connection at once.
    const response = await f.forward(address, invocation({ method: 'POST', headers: { 'content-length': '1' }, body: Readable.from([Buffer.from('x')]) }));
    assert.equal((await readBody(response)).toString(), 'ok');
    assert.equal(connections, 2);
  });

  test('forwarder — a request that was already forwarded once is never forwarded again', async () => {
    let requests = 0;
    const address = await listen(
      http.createServer((_req, res) => {
        requests++;
        res.end();
      }),
    );
    await assert.rejects(forwarder().forward(address, invocation({ headers: { [HOP_HEADER]: 'node-c' } })), /forwarded here by node 'node-c'/);
    assert.equal(requests, 0);
  });

  test('forwarder — each forward is reported on the lamplighter:cluster:forward channel with its outcome', async () => {
    const events: ForwardEvent[] = [];
    const listener = (message: unknown): void => void events.push(message as ForwardEvent);
    forwardChannel.subscribe(listener);
    try {
      const address = await listen(
        http.createServer((req, res) => {
          req.resume();
          res.writeHead(418).end();
        }),
      );
      const dead = await deadAddress();
      const f = forwarder();
      await readBody(await f.forward(address, invocation(), { peer: 'node-b' }));
      await assert.rejects(f.forward(dead, invocation()));
      await assert.rejects(f.forward(address, invocation({ headers: { [HOP_HEADER]: 'node-c' } })));
      assert.deepEqual(
        events.map(({ peer, node, kind, outcome, status }) => ({ peer, node, kind, outcome, status })),
        [
          { peer: address, node: 'node-b', kind: 'request', outcome: 'answered', status: 418 },
          { peer: dead, node: undefined, kind: 'request', outcome: 'unreachable', status: undefined },
          { peer: address, node: undefined, kind: 'request', outcome: 'refused', status: undefined },
        ],
      );
      assert.ok(events.every((e) => e.durationMs >= 0 && e.durationMs < 5_000));
    } finally {
      forwardChannel.unsubscribe(listener);
    }
  });

  test('forwarder — close() closes idle connections and refuses new forwards', async () => {
    const closed = signal();
    const server = http.createServer((req, res) => {
      req.resume();
      res.end('ok');
    });
    server.on('connection', (socket: net.Socket) => socket.on('close', closed.fire));
    const address = await listen(server);
    const f = new PeerForwarder({ node: 'node-a' });
    await readBody(await f.forward(address, invocation()));
    await f.close();
    await withTimeout(closed.promise, 2_000, 'the idle connection closing');
    await assert.rejects(f.forward(address, invocation()), (err: unknown) => err instanceof LamplighterError && err.code === ErrorCodes.SHUTTING_DOWN);
  });
});

/** A front server that hands every upgrade to the forwarder, as a gateway does; records what upgrade() gave. */
async function upgradingFront(f: PeerForwarder, peer: string): Promise<{ address: string; results: Array<Promise<number>> }> {
  const results: Array<Promise<number>> = [];
  const front = http.createServer((_req, res) => res.end());
  front.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const controller = new AbortController();
    socket.once('close', () => controller.abort());
    const request = invocation({ method: req.method!, url: req.url!, headers: req.headers, signal: controller.signal });
    const result = f.upgrade(peer, request, socket, head);
    result.catch((err: unknown) => {
      const status = err instanceof LamplighterError ? err.status : 500;
      socket.end(`HTTP/1.1 ${status} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    });
    results.push(result);
  });
  return { address: await listen(front), results };
}

/** Connects to `address`, sends an upgrade request and resolves with the socket and the answer's head. */
async function openUpgrade(address: string, protocol = 'websocket'): Promise<{ socket: net.Socket; head: string; rest: Buffer }> {
  const [host, port] = address.split(':') as [string, string];
  const socket = net.connect(Number(port), host);
  socket.on('error', () => {});
  socket.write(`GET /chat HTTP/1.1\r\nhost: app.example\r\nconnection: Upgrade\r\nupgrade: ${protocol}\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n`);
  let buffered = Buffer.alloc(0);
  for (;;) {
    const [chunk] = (await withTimeout(once(socket, 'data'), 5_000, 'the upgrade answer')) as [Buffer];
    buffered = Buffer.concat([buffered, chunk]);
    const end = buffered.indexOf('\r\n\r\n');
    if (end >= 0) return { socket, head: buffered.subarray(0, end).toString('latin1'), rest: buffered.subarray(end + 4) };
  }
}

/** Reads from `socket` until `expected` bytes have come. */
async function readExactly(socket: net.Socket, expected: number, already: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  let got = already;
  while (got.length < expected) {
    const [chunk] = (await withTimeout(once(socket, 'data'), 5_000, 'echoed bytes')) as [Buffer];
    got = Buffer.concat([got, chunk]);
  }
  return got;
}

describe('forwarder — upgrades', () => {
  test('forwarder — a WebSocket-style upgrade echoes bytes both ways; closing the client closes the peer side', async () => {
    let hop: string | undefined;
    const peerClosed = signal();
    const peer = http.createServer((_req, res) => res.end());
    peer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      hop = req.headers[HOP_HEADER] as string;
      socket.on('error', () => {});
      socket.on('close', peerClosed.fire);
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
      if (head.length > 0) socket.write(head);
      socket.pipe(socket);
    });
    const peerAddress = await listen(peer);
    const { address, results } = await upgradingFront(forwarder(), peerAddress);
    const { socket, head, rest } = await openUpgrade(address);
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.equal(hop, 'node-a');
    socket.write('ping from the client');
    assert.equal((await readExactly(socket, 20, rest)).toString(), 'ping from the client');
    const big = Buffer.alloc(MiB, 0x64);
    socket.write(big);
    assert.ok((await readExactly(socket, MiB)).equals(big));
    assert.equal(await results[0], 101);
    socket.end();
    await withTimeout(peerClosed.promise, 5_000, 'the peer side closing');
  });

  test('forwarder — closing the peer side of an upgraded connection closes the client', async () => {
    const peer = http.createServer((_req, res) => res.end());
    peer.on('upgrade', (_req: http.IncomingMessage, socket: Duplex) => {
      socket.on('error', () => {});
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\nhello');
      setTimeout(() => socket.destroy(), 50);
    });
    const { address } = await upgradingFront(forwarder(), await listen(peer));
    const { socket, head, rest } = await openUpgrade(address);
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.equal((await readExactly(socket, 5, rest)).toString(), 'hello');
    await withTimeout(once(socket, 'close'), 5_000, 'the client side closing');
  });

  test('forwarder — an upgrade the peer refuses (400) is relayed and the connection ends', async () => {
    const peer = http.createServer((_req, res) => res.end());
    peer.on('upgrade', (_req: http.IncomingMessage, socket: Duplex) => {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n\r\nbad upgrade');
    });
    const { address, results } = await upgradingFront(forwarder(), await listen(peer));
    const { socket, head, rest } = await openUpgrade(address);
    assert.match(head, /^HTTP\/1\.1 400 /);
    assert.equal((await readExactly(socket, 11, rest)).toString(), 'bad upgrade');
    assert.equal(await results[0], 400);
    await withTimeout(once(socket, 'close'), 5_000, 'the refused connection closing');
  });

  test('forwarder — an upgrade to a peer that is down is unreachable, and the client socket is left to the caller', async () => {
    const { address, results } = await upgradingFront(forwarder(), await deadAddress());
    const { head } = await openUpgrade(address);
    assert.match(head, /^HTTP\/1\.1 503 /);
    await assert.rejects(results[0]!, (err: unknown) => isPeerUnreachable(err));
  });
});

describe('forwarder — through a Lamplighter node', () => {
  let node: TestNode;
  let address: string;
  const f = forwarder();

  before(async () => {
    node = await startTestNode();
    const echo = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');
    await node.deploy(
      'name = "echo"\n[[function]]\nname = "echo"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nroutes = ["/..."]\nready = "/healthz"\n',
      { 'echo-server.mjs': echo },
    );
    address = new URL(node.url).host;
  });
  after(() => node?.close());

  test('forwarder — a node serves a forwarded request; its function sees the hop and the client in x-forwarded-for', async () => {
    const response = await f.forward(address, invocation({ url: '/_/headers?x=1', headers: { 'x-custom': 'kept' } }));
    assert.equal(response.status, 200);
    const seen = JSON.parse((await readBody(response)).toString()) as IncomingHttpHeaders;
    assert.equal(seen[HOP_HEADER], 'node-a');
    assert.equal(seen['x-custom'], 'kept');
    assert.equal(seen.host, 'app.example');
    // The client, then this node (the address the serving node got the request from).
    assert.equal(seen['x-forwarded-for'], '198.51.100.7, 127.0.0.1');
  });

  test('forwarder — a 4 MiB body goes through a node and back, streamed', async () => {
    const body = generatedBody(4 * MiB, Infinity, Promise.resolve());
    const response = await f.forward(address, invocation({ method: 'POST', url: '/echo', headers: { 'content-length': String(4 * MiB) }, body }));
    assert.equal(response.status, 200);
    const echoed = await readBody(response);
    assert.equal(echoed.length, 4 * MiB);
    assert.ok(echoed.every((b) => b === 0x61));
  });

  test('forwarder — an upgrade goes through a node to its process function and echoes', async () => {
    const { address: front } = await upgradingFront(f, address);
    const { socket, head, rest } = await openUpgrade(front, 'lamplighter-echo');
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.match(head, /x-seen-forwarded-for: 198\.51\.100\.7, 127\.0\.0\.1/);
    socket.write('through two nodes');
    assert.equal((await readExactly(socket, 17, rest)).toString(), 'through two nodes');
    socket.destroy();
  });
});
