// The TLS parts alone: certificate checks, SNI selection rules, redirect locations, and the
// HTTP/1.1 server's handling of clients that never complete a handshake.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Http1Server } from '../src/http1/index.js';
import { makeTestCertificates, makeTestServerCertificate, type TestCertificates } from '../src/testing/index.js';
import { httpsLocation, loadCertificate, pickCertificate, TlsCertificates } from '../src/tls/index.js';
import { eventually, tlsConnect } from './tls-helpers.js';

describe('SNI selection', () => {
  const certs = [{ names: ['default.test'] }, { names: ['*.example.test'] }, { names: ['a.example.test', 'b.test'] }];

  test('pickCertificate — an exact name wins over an earlier wildcard', () => {
    assert.equal(pickCertificate(certs, 'a.example.test'), 2);
    assert.equal(pickCertificate(certs, 'B.TEST.'), 2);
  });

  test('pickCertificate — a wildcard covers one label, no more and no less', () => {
    assert.equal(pickCertificate(certs, 'z.example.test'), 1);
    assert.equal(pickCertificate(certs, 'example.test'), 0);
    assert.equal(pickCertificate(certs, 'y.z.example.test'), 0);
    assert.equal(pickCertificate(certs, 'other.test'), 0);
  });
});

describe('httpsLocation', () => {
  test('httpsLocation — keeps host, path and query; puts the HTTPS port in place of the Host port', () => {
    assert.equal(httpsLocation('example.test:80', '/a?b=c', 8443), 'https://example.test:8443/a?b=c');
    assert.equal(httpsLocation('example.test', '/', 443), 'https://example.test/');
    assert.equal(httpsLocation('[2001:db8::1]:80', '/x', 443), 'https://[2001:db8::1]/x');
  });

  test('httpsLocation — a missing or malformed Host gives nothing', () => {
    for (const host of [undefined, '', 'a b', 'a/b', 'user@host', 'host:port', '-bad.test', '[zz]']) {
      assert.equal(httpsLocation(host, '/', 443), undefined, `Host ${JSON.stringify(host)}`);
    }
  });
});

describe('certificates and the TLS server', () => {
  let root: string;
  let certs: TestCertificates;
  let ca: Buffer;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'lamplighter-tls-unit-'));
    certs = await makeTestCertificates(path.join(root, 'pki'));
    ca = await readFile(certs.ca);
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('loadCertificate — reads the names of the subjectAltName', async () => {
    const files = await makeTestServerCertificate(certs, { name: 'names', cn: 'names', dns: ['Site.Example.Test', '*.wild.test'], ips: ['127.0.0.1'] });
    const loaded = await loadCertificate(files);
    assert.deepEqual(loaded.names, ['site.example.test', '*.wild.test']);
  });

  test('loadCertificate — a missing file, a file that is not PEM and a key of another certificate are refused, naming the file', async () => {
    const missing = path.join(root, 'nope.pem');
    await assert.rejects(loadCertificate({ cert: missing, key: certs.serverKey }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'LL_TLS_INVALID');
      assert.match(err.message, new RegExp(`--tls-cert '${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}': no such file`));
      return true;
    });
    const garbage = path.join(root, 'garbage.pem');
    await writeFile(garbage, 'hello\n');
    await assert.rejects(loadCertificate({ cert: certs.serverCert, key: garbage }), /--tls-key '.*garbage\.pem': it is not PEM/);
    await assert.rejects(loadCertificate({ cert: certs.serverCert, key: certs.clientKey }), /--tls-key '.*client-key\.pem': it is not the key of the certificate in --tls-cert '.*server\.pem'/);
    await assert.rejects(loadCertificate({ cert: certs.serverKey, key: certs.serverKey }), /--tls-cert '.*server-key\.pem': it is not a readable X\.509 certificate/);
  });

  test('http1 server — a plain-HTTP client on the TLS port is disconnected and the server keeps serving', async () => {
    const tls = await TlsCertificates.load([{ cert: certs.serverCert, key: certs.serverKey }], { watch: false, handshakeTimeoutMs: 5000 });
    const server = new Http1Server({ request: (_req, res) => res.send(200, [], Buffer.from('ok')) }, { tls });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const closed = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
        const chunks: Buffer[] = [];
        const timer = setTimeout(() => reject(new Error('the server did not close the connection within 3 s')), 3000);
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('error', () => {});
        socket.on('close', () => {
          clearTimeout(timer);
          resolve(Buffer.concat(chunks).toString('latin1'));
        });
      });
      assert.doesNotMatch(closed, /HTTP\/1\.1/);
      assert.equal(server.tlsClientErrors, 1);
      const socket = await tlsConnect(port, { ca, servername: 'localhost' });
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        socket.on('data', (c: Buffer) => (text += c.toString()));
        socket.on('end', () => resolve(text));
        socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      socket.destroy();
      assert.match(answer, /^HTTP\/1\.1 200 /);
      await eventually('every socket is closed', () => server.socketCount === 0);
    } finally {
      await server.close();
      tls.close();
    }
  });

  test('http1 server — a TLS handshake that never completes is cut after the handshake timeout, leaving no socket', async () => {
    const tls = await TlsCertificates.load([{ cert: certs.serverCert, key: certs.serverKey }], { watch: false, handshakeTimeoutMs: 300 });
    const server = new Http1Server({ request: (_req, res) => res.send(200, [], Buffer.from('ok')) }, { tls });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const started = Date.now();
      // Connects and says nothing, as a client that stalls before its ClientHello would.
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1');
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new Error('the stalled handshake was not cut within 3 s'));
        }, 3000);
        socket.on('error', () => {});
        socket.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const took = Date.now() - started;
      assert.ok(took >= 250, `cut after ${took} ms, before the timeout`);
      assert.equal(server.tlsClientErrors, 1);
      await eventually('every socket is closed', () => server.socketCount === 0, 2000);
    } finally {
      await server.close();
      tls.close();
    }
  });

  test('http1 server — close cuts a handshake in progress within its grace', async () => {
    const tls = await TlsCertificates.load([{ cert: certs.serverCert, key: certs.serverKey }], { watch: false, handshakeTimeoutMs: 60_000 });
    const server = new Http1Server({ request: (_req, res) => res.send(200, [], Buffer.from('ok')) }, { tls, closeGraceMs: 200 });
    const port = await server.listen(0, '127.0.0.1');
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    await eventually('the server has the socket', () => server.socketCount === 1, 2000);
    const started = Date.now();
    await server.close();
    assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms`);
    assert.equal(server.socketCount, 0);
    tls.close();
  });
});
