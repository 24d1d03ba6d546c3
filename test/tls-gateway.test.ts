// End-to-end: a node serving HTTPS — WAGI and process functions, SNI, ALPN, live reload, the redirect.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { makeTestCertificates, makeTestServerCertificate, repoRoot, startTestNode, wagiApp, wagiFixture, type TestCertificates, type TestNode } from '../src/testing/index.js';
import { commonName, eventually, replacePair, servedCommonName, tlsConnect } from './tls-helpers.js';

const ECHO = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Common name of the certificate the connection was made with. */
  peer: string;
  reused: boolean;
}

/** One HTTPS GET, bounded in time. */
function httpsGet(port: number, target: string, options: { ca: Buffer; agent?: https.Agent; servername?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path: target, ca: options.ca, agent: options.agent ?? false, servername: options.servername ?? 'localhost', headers: { host: 'localhost' }, timeout: 10_000 },
      (res) => {
        const peer = commonName((res.socket as TLSSocket).getPeerCertificate());
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString(), peer, reused: req.reusedSocket }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${target} timed out`)));
    req.on('error', reject);
  });
}

/** One plain HTTP request, written by hand so that the Host header is exactly what the test says. */
function rawHttp(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(head));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 5 s')), 5000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.on('error', reject);
  });
}

describe('gateway over TLS', () => {
  let root: string;
  let certs: TestCertificates;
  let ca: Buffer;
  let node: TestNode;
  const live = { cert: '', key: '' };
  let renewed: { cert: string; key: string };
  const logLines: Array<{ level: number; msg: string; cert?: string }> = [];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'lamplighter-tls-'));
    certs = await makeTestCertificates(path.join(root, 'pki'));
    ca = await readFile(certs.ca);
    const site = await makeTestServerCertificate(certs, { name: 'site', cn: 'site-one', dns: ['localhost', 'a.example.test'], ips: ['127.0.0.1'] });
    renewed = await makeTestServerCertificate(certs, { name: 'site-renewed', cn: 'site-two', dns: ['localhost', 'a.example.test'], ips: ['127.0.0.1'] });
    const wild = await makeTestServerCertificate(certs, { name: 'wild', cn: 'wild-b', dns: ['*.b.example.test'] });
    // The files the node serves live in their own directory, where the test replaces them.
    const liveDir = path.join(root, 'live');
    await mkdir(liveDir);
    live.cert = path.join(liveDir, 'cert.pem');
    live.key = path.join(liveDir, 'key.pem');
    await replacePair(site, live);
    const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line) as (typeof logLines)[number]) });
    node = await startTestNode({ logger, tls: { certificates: [live, wild], redirectPort: 0 } });
    await node.deploy(wagiApp('env', 'env', 'env.wasm', ['/env']), { 'env.wasm': wagiFixture('env') });
    await node.deploy(`name = "echo"\n[[function]]\nname = "echo"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nroutes = ["/_/headers"]\nready = "/healthz"\n`, { 'echo-server.mjs': ECHO });
  });

  after(async () => {
    await node?.close();
    await rm(root, { recursive: true, force: true });
  });

  test('https gateway — serves a WAGI function, whose X_FULL_URL says https and HTTPS is on', async () => {
    assert.equal(node.platform.scheme, 'https');
    const res = await httpsGet(node.platform.port, '/env?x=1', { ca });
    assert.equal(res.status, 200);
    assert.match(res.text, new RegExp(`^ENV X_FULL_URL=https://localhost/env\\?x=1$`, 'm'));
    assert.match(res.text, /^ENV HTTPS=on$/m);
  });

  test('https gateway — a process function sees x-forwarded-proto: https', async () => {
    const res = await httpsGet(node.platform.port, '/_/headers', { ca });
    assert.equal(res.status, 200, res.text);
    const seen = JSON.parse(res.text) as Record<string, string>;
    assert.equal(seen['x-forwarded-proto'], 'https');
  });

  test('SNI — each name gets the certificate that names it, wildcards included; others get the first', async () => {
    const port = node.platform.port;
    assert.equal(await servedCommonName(port, { ca, servername: 'a.example.test' }), 'site-one');
    assert.equal(await servedCommonName(port, { ca, servername: 'x.b.example.test' }), 'wild-b');
    assert.equal(await servedCommonName(port, { ca, servername: 'X.B.Example.Test' }), 'wild-b');
    // A wildcard covers one label only.
    assert.equal(await servedCommonName(port, { ca, servername: 'y.x.b.example.test' }), 'site-one');
    assert.equal(await servedCommonName(port, { ca, servername: 'unknown.test' }), 'site-one');
    assert.equal(await servedCommonName(port, { ca }), 'site-one');
  });

  test('ALPN — http/1.1 is negotiated', async () => {
    const socket = await tlsConnect(node.platform.port, { ca, servername: 'x.b.example.test' });
    try {
      assert.equal(socket.alpnProtocol, 'http/1.1');
    } finally {
      socket.destroy();
    }
  });

  test('reload — a replaced certificate is served to new connections; an open keep-alive connection keeps working', async () => {
    const port = node.platform.port;
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await httpsGet(port, '/env', { ca, agent });
      assert.equal(first.status, 200);
      assert.equal(first.peer, 'site-one');
      await replacePair(renewed, live);
      await eventually('the renewed certificate is served', async () => (await servedCommonName(port, { ca, servername: 'a.example.test' })) === 'site-two');
      // Clients without SNI get the server's default context, which is replaced separately.
      assert.equal(await servedCommonName(port, { ca }), 'site-two');
      const second = await httpsGet(port, '/env', { ca, agent });
      assert.equal(second.status, 200);
      assert.equal(second.reused, true, 'the keep-alive connection was not reused');
      assert.equal(second.peer, 'site-one');
      assert.ok(logLines.some((l) => l.msg === 'TLS certificate reloaded' && l.cert === live.cert));
    } finally {
      agent.destroy();
    }
  });

  test('reload — a broken replacement is logged and the previous certificate stays in use', async () => {
    const port = node.platform.port;
    await writeFile(live.cert, 'not a certificate\n');
    await eventually('the broken file is logged', () => logLines.some((l) => l.level === 40 && /not reloaded/.test(l.msg) && /not PEM/.test(l.msg)));
    assert.equal(await servedCommonName(port, { ca, servername: 'a.example.test' }), 'site-two');
    const res = await httpsGet(port, '/env', { ca });
    assert.equal(res.status, 200);
    // An explicit reload says the same.
    const result = await node.platform.reloadTls();
    assert.deepEqual(result.reloaded, []);
    assert.equal(result.failed.length, 1);
    assert.match(result.failed[0]!.message, new RegExp(`${live.cert.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*not PEM`));
  });

  test('redirect — plain HTTP gets a 308 to the same path and query over HTTPS, on the HTTPS port', async () => {
    const port = node.platform.port;
    const redirect = node.platform.redirectPort;
    assert.ok(redirect > 0);
    const res = await rawHttp(redirect, 'GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.test:8080\r\n\r\n');
    assert.match(res, /^HTTP\/1\.1 308 /);
    assert.match(res, new RegExp(`\r\nlocation: https://example.test:${port}/a/b\\?x=1&y=2\r\n`, 'i'));
    const v6 = await rawHttp(redirect, 'POST /up HTTP/1.1\r\nHost: [::1]\r\ncontent-length: 0\r\n\r\n');
    assert.match(v6, new RegExp(`\r\nlocation: https://\\[::1\\]:${port}/up\r\n`, 'i'));
  });

  test('redirect — a missing or malformed Host is a 400', async () => {
    const redirect = node.platform.redirectPort;
    assert.match(await rawHttp(redirect, 'GET / HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await rawHttp(redirect, 'GET / HTTP/1.1\r\nHost: evil.test/x@y\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await rawHttp(redirect, 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n'), /^HTTP\/1\.1 400 /);
  });
});
