// The admin API: its own bind address, and clear answers to bodies it will not take.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { ClusterView } from '../src/cluster/index.js';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

/** What came back on a raw connection: the bytes read, and the socket error if there was one. */
interface RawExchange {
  text: string;
  error: string | undefined;
}

/** Sends `head`, then `chunks` (each written when the socket drains), and reads until the server closes. */
function rawExchange(port: number, head: string, chunks: Iterable<Buffer>, timeoutMs = 20_000): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => socket.destroy(new Error('timed out')), timeoutMs);
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(received).toString('latin1'), error });
    });
    socket.on('connect', async () => {
      socket.write(head);
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r).once('close', r));
      }
      if (!socket.destroyed) socket.end();
    });
  });
}

function* chunked(total: number, size: number): Generator<Buffer> {
  const piece = Buffer.alloc(size, 0x61);
  for (let sent = 0; sent < total; sent += size) yield Buffer.concat([Buffer.from(`${size.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
  yield Buffer.from('0\r\n\r\n');
}

describe('admin API', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(() => node.close());

  test('admin API — an oversized chunked JSON body gets 413 with LL_BODY_TOO_LARGE, not a reset', async () => {
    const head = `POST /v1/apps HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer ${node.platform.token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
    const out = await rawExchange(node.platform.adminPort, head, chunked(17 * 1024 * 1024, 256 * 1024));
    assert.equal(out.error, undefined, `the connection failed: ${out.error}; got ${JSON.stringify(out.text.slice(0, 200))}`);
    assert.match(out.text, /^HTTP\/1\.1 413 /);
    const body = JSON.parse(out.text.slice(out.text.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'LL_BODY_TOO_LARGE');
    assert.match(body.error.message, /16 MiB/);
    // The node still answers.
    assert.equal((await fetch(`${node.adminUrl}/healthz`)).status, 200);
  });

  test('admin API — a chunked body within the limit is read whole', async () => {
    const res = await fetch(`${node.adminUrl}/v1/blobs/missing`, {
      method: 'POST',
      headers: { authorization: `Bearer ${node.platform.token}`, 'content-type': 'application/json' },
      // A stream body is sent chunked.
      body: new Blob([JSON.stringify({ digests: ['0'.repeat(64)] })]).stream(),
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { missing: ['0'.repeat(64)] });
  });
});

describe('admin API cluster view', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ nodeName: 'solo' });
  });
  after(() => node.close());

  test('admin API — GET /v1/cluster needs the bearer token like every /v1 endpoint', async () => {
    // No header, a wrong token, and the right token without its Bearer scheme.
    for (const authorization of [undefined, 'Bearer not-the-token', node.platform.token]) {
      const res = await fetch(`${node.adminUrl}/v1/cluster`, authorization ? { headers: { authorization } } : {});
      assert.equal(res.status, 401, String(authorization));
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'LL_UNAUTHORIZED');
    }
  });

  test('admin API — GET /v1/cluster on an embedded node: one healthy node, itself, and where its instances run', async () => {
    const get = async (): Promise<ClusterView> => {
      const res = await fetch(`${node.adminUrl}/v1/cluster`, { headers: { authorization: `Bearer ${node.platform.token}` } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      return (await res.json()) as ClusterView;
    };
    const before = Date.now();
    const empty = await get();
    assert.equal(empty.mode, 'embedded');
    assert.equal(empty.node, 'solo');
    assert.equal(empty.nodes.length, 1);
    const [self] = empty.nodes;
    assert.deepEqual({ ...self, lastHeartbeat: undefined }, { name: 'solo', address: `127.0.0.1:${node.platform.port}`, healthy: true, self: true, draining: false, lastHeartbeat: undefined });
    const heartbeat = Date.parse(self!.lastHeartbeat);
    assert.ok(heartbeat >= before - 1000 && heartbeat <= Date.now() + 1000, `lastHeartbeat ${self!.lastHeartbeat} is now`);
    assert.deepEqual(empty.functions, []);

    await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello'], '[function.scale]\nmax = 7\n'), { 'hello.wasm': wagiFixture('../../../examples/hello/hello') });
    const idle = await get();
    assert.deepEqual(idle.functions, [{ name: 'hello', max: 7, instances: [] }]);
    assert.equal((await fetch(`${node.url}/hello`)).status, 200);
    const lit = await get();
    assert.equal(lit.functions.length, 1);
    assert.equal(lit.functions[0]!.instances.length, 1);
    const [instance] = lit.functions[0]!.instances;
    assert.equal(instance!.node, 'solo');
    assert.equal(typeof instance!.id, 'string');
    assert.ok(instance!.free >= 0);
  });
});

describe('admin API bind address', () => {
  test('admin API — with the gateway on 0.0.0.0 the admin port is bound on loopback only', async () => {
    const node = await startTestNode({ host: '0.0.0.0' });
    try {
      assert.equal(node.platform.adminAddress?.address, '127.0.0.1');
      assert.equal((await fetch(`${node.adminUrl}/healthz`)).status, 200);
    } finally {
      await node.close();
    }
  });

  test('admin API — adminHost binds it where it is told', async () => {
    const node = await startTestNode({ host: '127.0.0.1', adminHost: '127.0.0.2' });
    try {
      assert.equal(node.platform.adminAddress?.address, '127.0.0.2');
      assert.equal((await fetch(`http://127.0.0.2:${node.platform.adminPort}/healthz`)).status, 200);
    } finally {
      await node.close();
    }
  });
});
