// Connecting a node to NATS: URLs, TLS with client certificates, tokens, clear errors, and a server's loss.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectCluster, parseClusterUrls, type ClusterConnectOptions } from '../src/cluster/index.js';
import { isLamplighterError, type LamplighterError } from '../src/errors/index.js';
import {
  freePort,
  makeTestCertificates,
  makeTestOperator,
  startNatsCluster,
  startNatsServer,
  type NatsCluster,
  type NatsServer,
  type TestCertificates,
  type TestOperator,
} from '../src/testing/index.js';

/** Asserts that `attempt` rejects with a LamplighterError of `code` whose message matches each pattern. */
async function rejectsWith(attempt: Promise<unknown>, code: string, ...patterns: RegExp[]): Promise<LamplighterError> {
  let caught: unknown;
  await assert.rejects(attempt, (err) => {
    caught = err;
    return true;
  });
  assert.ok(isLamplighterError(caught), `expected a LamplighterError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

/** A request/reply round trip through `nc` to a responder on the same connection. */
async function roundTrip(nc: NatsConnection): Promise<void> {
  const sub = nc.subscribe('lamplighter.test.echo', { callback: (_err, msg) => void msg.respond(msg.data) });
  try {
    const reply = await nc.request('lamplighter.test.echo', 'ping', { timeout: 2000 });
    assert.equal(reply.string(), 'ping');
  } finally {
    sub.unsubscribe();
  }
}

describe('nats connection — URLs', () => {
  test('nats connection — --cluster takes nats:// and tls:// lists, port 4222 by default', () => {
    assert.deepEqual(parseClusterUrls('nats://10.0.0.1:4222, tls://nats.example:7422,nats://[::1]:5000'), [
      'nats://10.0.0.1:4222',
      'tls://nats.example:7422',
      'nats://[::1]:5000',
    ]);
    assert.deepEqual(parseClusterUrls('nats://a'), ['nats://a:4222']);
  });

  test('nats connection — bad --cluster text is refused, naming the entry and the expected form', () => {
    const cases: [string, RegExp][] = [
      ['http://10.0.0.1:4222', /'http:\/\/10\.0\.0\.1:4222' has scheme 'http'/],
      ['10.0.0.1:4222', /'10\.0\.0\.1:4222'/],
      ['nats://a:4222,nonsense', /'nonsense' is not a URL/],
      ['nats://user:secret@a:4222', /carries credentials/],
      ['nats://a:4222/path', /has a path/],
      ['nats://a:99999', /'nats:\/\/a:99999'/],
      [' , ', /at least one NATS server URL/],
    ];
    for (const [text, pattern] of cases) {
      assert.throws(
        () => parseClusterUrls(text),
        (err: unknown) => {
          assert.ok(isLamplighterError(err));
          assert.equal(err.code, 'LL_BAD_REQUEST');
          assert.match(err.message, pattern);
          assert.match(err.message, /nats:\/\/HOST:PORT or tls:\/\/HOST:PORT/);
          return true;
        },
        text,
      );
    }
  });
});

describe('nats connection — TLS, tokens and files', () => {
  let dir: string;
  let certs: TestCertificates;
  let mtls: NatsServer;
  let foreign: NatsServer;
  let plain: NatsServer;
  let guarded: NatsServer;
  let operator: TestOperator;
  let decentralized: NatsServer;
  let silent: Server;
  const silentSockets: Socket[] = [];
  const open: NatsConnection[] = [];
  const connected = async (options: ClusterConnectOptions): Promise<NatsConnection> => {
    const nc = await connectCluster(options);
    open.push(nc);
    return nc;
  };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-nats-tls-'));
    [certs, operator] = await Promise.all([makeTestCertificates(dir), makeTestOperator(dir)]);
    [mtls, foreign, plain, guarded, decentralized] = await Promise.all([
      startNatsServer({ tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, verify: true } }),
      startNatsServer({ tls: { cert: certs.otherServerCert, key: certs.otherServerKey } }),
      startNatsServer(),
      startNatsServer({ token: 'right-token' }),
      startNatsServer({ extraConfig: operator.config }),
    ]);
    // Accepts connections and never says a word, as a wedged server or a black hole would.
    silent = createServer((socket) => silentSockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    await Promise.all(open.map((nc) => nc.close()));
    for (const s of silentSockets) s.destroy();
    await new Promise((resolve) => silent?.close(resolve));
    await Promise.all([mtls, foreign, plain, guarded, decentralized].map((s) => s?.close()));
    await rm(dir, { recursive: true, force: true });
  });

  test('nats connection — a client certificate signed by the servers\' CA is accepted', async () => {
    const nc = await connected({ servers: [mtls.url], name: 'node-a', ca: certs.ca, cert: certs.clientCert, key: certs.clientKey });
    assert.equal(nc.info?.tls_verify, true);
    await roundTrip(nc);
  });

  test('nats connection — a tls:// URL connects over TLS', async () => {
    const nc = await connected({
      servers: [`tls://127.0.0.1:${mtls.port}`],
      name: 'node-a',
      ca: certs.ca,
      cert: certs.clientCert,
      key: certs.clientKey,
    });
    await roundTrip(nc);
  });

  test('nats connection — without a client certificate, or with an untrusted one, the server refuses, and the error says so', async () => {
    const started = Date.now();
    await rejectsWith(
      connectCluster({ servers: [`tls://127.0.0.1:${mtls.port}`], name: 'node-a', ca: certs.ca, connectTimeoutMs: 5000 }),
      'LL_UPSTREAM_UNAVAILABLE',
      new RegExp(`tls://127\\.0\\.0\\.1:${mtls.port}`),
      /requires a client certificate; give --nats-cert and --nats-key/,
    );
    // Said at once, not after the timeout.
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    await rejectsWith(
      connectCluster({ servers: [mtls.url], name: 'node-a', ca: certs.ca, cert: certs.otherServerCert, key: certs.otherServerKey }),
      'LL_UPSTREAM_UNAVAILABLE',
      /refused this node's client certificate; is --nats-cert signed by a CA the server trusts\?/,
    );
  });

  test('nats connection — a server certificate from another CA is refused', async () => {
    await rejectsWith(
      connectCluster({ servers: [foreign.url], name: 'node-a', ca: certs.ca }),
      'LL_UPSTREAM_UNAVAILABLE',
      new RegExp(foreign.url.replaceAll('.', '\\.')),
      /not signed by a CA this node trusts; give the servers' CA with --nats-ca/,
    );
  });

  test('nats connection — tls:// to a server without TLS is refused', async () => {
    await rejectsWith(
      connectCluster({ servers: [`tls://127.0.0.1:${plain.port}`], name: 'node-a' }),
      'LL_UPSTREAM_UNAVAILABLE',
      /the server does not offer it/,
    );
  });

  test('nats connection — the right token is accepted and a wrong one refused', async () => {
    await roundTrip(await connected({ servers: [guarded.url], name: 'node-a', token: 'right-token' }));
    for (const token of ['wrong-token', undefined]) {
      await rejectsWith(
        connectCluster({ servers: [guarded.url], name: 'node-a', ...(token && { token }) }),
        'LL_UNAUTHORIZED',
        /NATS refused the credentials: check --nats-token\/--nats-creds/,
      );
    }
  });

  test("nats connection — a user's .creds file is accepted and a stranger's refused", async () => {
    await roundTrip(await connected({ servers: [decentralized.url], name: 'node-a', creds: operator.creds }));
    await rejectsWith(
      connectCluster({ servers: [decentralized.url], name: 'node-a', creds: operator.strangerCreds }),
      'LL_UNAUTHORIZED',
      /NATS refused the credentials: check --nats-token\/--nats-creds/,
    );
  });

  test('nats connection — unreadable or malformed files are named by their flag', async () => {
    const missing = path.join(dir, 'absent.pem');
    const garbage = path.join(dir, 'garbage.txt');
    await writeFile(garbage, 'not a certificate\n');
    const base = { servers: [mtls.url], name: 'node-a' };
    await rejectsWith(connectCluster({ ...base, ca: missing }), 'LL_BAD_REQUEST', /--nats-ca file '.*absent\.pem' \(ENOENT\)/);
    await rejectsWith(connectCluster({ ...base, cert: missing, key: certs.clientKey }), 'LL_BAD_REQUEST', /--nats-cert file/);
    await rejectsWith(connectCluster({ ...base, cert: certs.clientCert, key: missing }), 'LL_BAD_REQUEST', /--nats-key file/);
    await rejectsWith(connectCluster({ ...base, creds: missing }), 'LL_BAD_REQUEST', /--nats-creds file '.*absent\.pem' \(ENOENT\)/);
    await rejectsWith(connectCluster({ ...base, ca: garbage }), 'LL_BAD_REQUEST', /--nats-ca file .* is not a PEM certificate/);
    await rejectsWith(
      connectCluster({ ...base, cert: certs.clientCert, key: garbage }),
      'LL_BAD_REQUEST',
      /--nats-key file .* is not a PEM private key/,
    );
    await rejectsWith(connectCluster({ ...base, cert: certs.clientCert }), 'LL_BAD_REQUEST', /--nats-cert and --nats-key go together/);
    await rejectsWith(connectCluster({ ...base, creds: garbage }), 'LL_BAD_REQUEST', /--nats-creds file .* is not a NATS credentials file/);
    const badSeed = path.join(dir, 'bad-seed.creds');
    await writeFile(
      badSeed,
      [
        '-----BEGIN NATS USER JWT-----',
        'aaa.bbb.ccc',
        '------END NATS USER JWT------',
        '',
        '-----BEGIN USER NKEY SEED-----',
        'SUNOTASEED',
        '------END USER NKEY SEED------',
        '',
      ].join('\n'),
    );
    await rejectsWith(connectCluster({ ...base, creds: badSeed }), 'LL_BAD_REQUEST', /not an nkey seed/);
  });

  test('nats connection — an unreachable server fails within the timeout, naming the URL', async () => {
    const closedPort = await freePort();
    await rejectsWith(
      connectCluster({ servers: [`nats://127.0.0.1:${closedPort}`], name: 'node-a' }),
      'LL_UPSTREAM_UNAVAILABLE',
      new RegExp(`nats://127\\.0\\.0\\.1:${closedPort} \\(connection refused`),
    );
    const { port } = silent.address() as { port: number };
    const started = Date.now();
    const err = await rejectsWith(
      connectCluster({ servers: [`nats://127.0.0.1:${port}`, `nats://127.0.0.1:${closedPort}`], name: 'node-a', connectTimeoutMs: 600 }),
      'LL_UPSTREAM_UNAVAILABLE',
      new RegExp(`nats://127\\.0\\.0\\.1:${port} \\(no answer within 600 ms\\)`),
      new RegExp(`nats://127\\.0\\.0\\.1:${closedPort} \\(connection refused`),
    );
    const took = Date.now() - started;
    assert.ok(took >= 550 && took < 1500, `took ${took} ms`);
    assert.equal((err.detail?.servers as unknown[]).length, 2);
  });
});

describe('nats connection — a 3-server cluster', () => {
  let cluster: NatsCluster;
  const open: NatsConnection[] = [];

  before(async () => {
    cluster = await startNatsCluster(3);
  });

  after(async () => {
    await Promise.all(open.map((nc) => nc.close()));
    await cluster?.close();
  });

  /** Retries `work` until it succeeds, for at most `ms`; returns how long it took. */
  async function eventually(ms: number, work: () => Promise<void>): Promise<number> {
    const started = Date.now();
    let last: unknown;
    for (let i = 0; i < 200 && Date.now() - started < ms; i++) {
      try {
        await work();
        return Date.now() - started;
      } catch (err) {
        last = err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`still failing after ${ms} ms: ${String(last)}`);
  }

  test('nats connection — a client rides out the loss and return of its server', async (t) => {
    const events: string[] = [];
    const nc = await connectCluster({ servers: cluster.urls, name: 'node-a', onStatus: (e) => events.push(e.type) });
    const peer = await connectCluster({ servers: [...cluster.urls].reverse(), name: 'node-b' });
    open.push(nc, peer);
    peer.subscribe('lamplighter.test.echo', { callback: (_err, msg) => void msg.respond(msg.data) });
    await peer.flush();
    // A short timeout per call lets the retries below notice recovery soon after it happens.
    // Reads from the stream leader, as the store reads: a direct get may answer from a replica
    // that has not yet applied the put just acknowledged.
    const kv = await new Kvm(jetstream(nc, { timeout: 1000 })).create('lamplighter_test', { replicas: 3, allow_direct: false });
    assert.equal((await kv.status()).replicas, 3);
    const works = async (value: string): Promise<void> => {
      await kv.put('key', value);
      assert.equal((await kv.get('key'))?.string(), value);
      const reply = await nc.request('lamplighter.test.echo', value, { timeout: 1000 });
      assert.equal(reply.string(), value);
    };
    await works('before');

    const mine = cluster.servers.findIndex((s) => s.name === nc.info?.server_name);
    assert.ok(mine >= 0, `connected to an unknown server ${nc.info?.server_name}`);
    await cluster.kill(mine);
    const afterKill = await eventually(15_000, () => works('while down'));
    assert.ok(events.includes('disconnect') && events.includes('reconnect'), `status events: ${events.join(', ')}`);
    assert.notEqual(nc.info?.server_name, cluster.servers[mine]!.name);

    // Back, and needed: with another server gone, the replicas' quorum rests on the one that returned.
    await cluster.restart(mine);
    const afterRestart = await eventually(15_000, () => works('restarted'));
    const another = cluster.servers.findIndex((s, i) => i !== mine && s.name !== nc.info?.server_name);
    await cluster.kill(another);
    const onReturned = await eventually(15_000, () => works('quorum with the returned server'));
    t.diagnostic(
      `serving again ${afterKill} ms after the kill, ${afterRestart} ms after the restart, ${onReturned} ms on the returned server`,
    );
    await cluster.restart(another);
  });
});
