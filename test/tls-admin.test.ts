// The admin API over TLS, driven by the real CLI: trusted through --ca or LAMPLIGHTER_CA, refused
// clearly without; and `serve` refusing certificate files it cannot use.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTestCertificates, startTestNode, wagiApp, wagiFixture, type TestCertificates, type TestNode } from '../src/testing/index.js';
import { killAllChildren, runCli } from './cli-helpers.js';

describe('admin API over TLS', () => {
  let root: string;
  let certs: TestCertificates;
  let node: TestNode;
  let server: string;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'lamplighter-tls-admin-'));
    certs = await makeTestCertificates(path.join(root, 'pki'));
    node = await startTestNode({ adminTls: { cert: certs.serverCert, key: certs.serverKey } });
    await node.deploy(wagiApp('hello', 'hello', 'echo.wasm', ['/hello']), { 'echo.wasm': wagiFixture('echo') });
    server = `https://127.0.0.1:${node.platform.adminPort}`;
  });

  after(async () => {
    killAllChildren();
    await node?.close();
    await rm(root, { recursive: true, force: true });
  });

  test('admin TLS — `ls --server https://… --ca FILE` lists the apps', async () => {
    assert.equal(node.platform.adminScheme, 'https');
    const res = await runCli(['ls', '--server', server, '--ca', certs.ca, '--token', node.platform.token]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /hello/);
  });

  test('admin TLS — LAMPLIGHTER_CA trusts the CA as --ca does', async () => {
    const res = await runCli(['ls', '--server', server], { env: { LAMPLIGHTER_CA: certs.ca, LAMPLIGHTER_TOKEN: node.platform.token } });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /hello/);
  });

  test('admin TLS — an untrusted certificate is refused with the flag to use', async () => {
    const res = await runCli(['ls', '--server', server, '--token', node.platform.token], { env: { LAMPLIGHTER_CA: undefined, NODE_EXTRA_CA_CERTS: undefined } });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /does not trust/);
    assert.match(res.stderr, /--ca FILE or LAMPLIGHTER_CA/);
    const wrong = await runCli(['ls', '--server', server, '--ca', certs.otherCa, '--token', node.platform.token]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /the CA from --ca \('.*other-ca\.pem'\) did not sign it/);
  });

  test('serve — a certificate file it cannot use is refused at start, naming the file', async () => {
    const missing = path.join(root, 'missing.pem');
    const data = path.join(root, 'serve-data');
    const res = await runCli(['serve', '--data', data, '--port', '0', '--admin-port', '0', '--tls-cert', missing, '--tls-key', certs.serverKey], { timeoutMs: 20_000 });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, new RegExp(`--tls-cert '${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}': no such file`));
    const mismatch = await runCli(['serve', '--data', data, '--port', '0', '--admin-port', '0', '--admin-tls-cert', certs.serverCert, '--admin-tls-key', certs.clientKey], { timeoutMs: 20_000 });
    assert.notEqual(mismatch.code, 0);
    assert.match(mismatch.stderr, /--admin-tls-key '.*client-key\.pem': it is not the key of the certificate in --admin-tls-cert/);
    const unpaired = await runCli(['serve', '--data', data, '--port', '0', '--admin-port', '0', '--tls-cert', certs.serverCert], { timeoutMs: 20_000 });
    assert.notEqual(unpaired.code, 0);
    assert.match(unpaired.stderr, /tls_cert and tls_key come in pairs, one key for each certificate \(--tls-cert FILE --tls-key FILE\); got 1 certificate\(s\) and 0 key\(s\)/);
  });
});
