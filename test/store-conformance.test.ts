// The store conformance suite on the file store and on the JetStream store (a real nats-server), plus what only a shared store does.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { digestOf, FileStore, JetStreamStore, type ArtifactStore, type DamageReport, type PointerChange, type StoreEvents } from '../src/store/index.js';
import { freePort, startNatsServer, waitForPort, type NatsServer } from '../src/testing/index.js';
import { storeConformance, until, type StoreFixture } from './store-conformance.js';

/** A revision cut off mid-write. */
const NOT_JSON = '{"app": "app", "numb';

describe('file store conformance', () => {
  const dirs: string[] = [];
  let dir = '';
  const fixture: StoreFixture = {
    async open(options = {}) {
      dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-conformance-'));
      dirs.push(dir);
      return FileStore.open(dir, options);
    },
    damageRevision: (app, n, text = NOT_JSON) => writeFile(fixture.names.revision(app, n), text),
    damagePointer: (app, text = 'two\n') => writeFile(fixture.names.pointer(app), text),
    damageBlob: (digest) => writeFile(fixture.names.blob(digest), 'tampered'),
    names: {
      revision: (app, n) => path.join(dir, 'apps', app, 'revisions', `${n}.json`),
      pointer: (app) => path.join(dir, 'apps', app, 'current'),
      blob: (digest) => path.join(dir, 'blobs', 'sha256', digest.slice(0, 2), digest),
    },
    async blobVersion(digest) {
      const s = await stat(fixture.names.blob(digest), { bigint: true }).catch(() => undefined);
      return s && `${s.ino}:${s.mtimeNs}:${s.ctimeNs}`;
    },
    async close() {
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    },
  };
  after(() => fixture.close());
  storeConformance('file', fixture);
});

/** A connection that keeps trying while a test restarts its server. */
const connectTo = (server: NatsServer): Promise<NatsConnection> => connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100, timeout: 5000 });

describe('jetstream store conformance', () => {
  let server: NatsServer;
  const connections: NatsConnection[] = [];
  const stores: ArtifactStore[] = [];
  let prefix = '';
  let opened = 0;
  let admin: NatsConnection;

  before(async () => {
    server = await startNatsServer();
    admin = await connectTo(server);
    connections.push(admin);
  });
  after(async () => {
    for (const s of stores) await s.close?.();
    for (const nc of connections) await nc.close().catch(() => undefined);
    await server?.close();
  });

  const openOn = async (events: StoreEvents | undefined): Promise<JetStreamStore> => {
    const nc = await connectTo(server);
    connections.push(nc);
    // Short request timeouts, so writes retried while the server restarts come back quickly.
    const store = await JetStreamStore.open(nc, { prefix, timeoutMs: 1000, ...(events ? { events } : {}) });
    stores.push(store);
    return store;
  };
  const fixture: StoreFixture = {
    async open(options = {}) {
      prefix = `t${++opened}`;
      return openOn(options.events);
    },
    openSecond: (options = {}) => openOn(options.events),
    async damageRevision(app, n, text = NOT_JSON) {
      await (await new Kvm(admin).open(`${prefix}-revisions`)).put(`${app}.${n}`, text);
    },
    async damagePointer(app, text = 'two') {
      await (await new Kvm(admin).open(`${prefix}-pointers`)).put(app, text);
    },
    async damageBlob(digest) {
      await (await new Objm(admin).open(`${prefix}-blobs`)).putBlob({ name: digest }, Buffer.from('tampered'));
    },
    names: {
      revision: (app, n) => `kv:${prefix}-revisions/${app}.${n}`,
      pointer: (app) => `kv:${prefix}-pointers/${app}`,
      blob: (digest) => `obj:${prefix}-blobs/${digest}`,
    },
    async blobVersion(digest) {
      return (await (await new Objm(admin).open(`${prefix}-blobs`)).info(digest))?.nuid;
    },
    close: async () => undefined,
  };
  storeConformance('jetstream', fixture);

  test('jetstream store — watch hears commits, rollbacks and removals made through another connection', async () => {
    const watcher = await fixture.open();
    const writer = await fixture.openSecond!();
    const seen: PointerChange[] = [];
    watcher.watch!((c) => seen.push(c));
    await writer.commit('app', { manifest: 'one', artifacts: {} });
    await writer.commit('other', { manifest: 'o', artifacts: {} });
    await writer.commit('app', { manifest: 'two', artifacts: {} });
    await writer.setCurrent('app', 1);
    await writer.removeApp('other');
    const expected = [
      { app: 'app', current: 1 },
      { app: 'other', current: 1 },
      { app: 'app', current: 2 },
      { app: 'app', current: 1 },
      { app: 'other', current: undefined },
    ];
    await until(() => seen.length >= expected.length, 5000);
    assert.deepEqual(seen, expected);
  });

  test('jetstream store — close() stops the watchers; the connection stays usable', async () => {
    const watcher = await fixture.open();
    const writer = await fixture.openSecond!();
    const seen: PointerChange[] = [];
    watcher.watch!((c) => seen.push(c));
    await writer.commit('app', { manifest: 'one', artifacts: {} });
    await until(() => seen.length === 1, 5000);
    await watcher.close!();
    await writer.commit('app', { manifest: 'two', artifacts: {} });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(seen.length, 1);
    assert.equal((await watcher.current('app'))?.manifest, 'two', 'reads still work: the connection is the caller\'s');
  });

  test('jetstream store — a 5 MiB blob round-trips, verified', async () => {
    const store = await fixture.open();
    const other = await fixture.openSecond!();
    const bytes = randomBytes(5 * 1024 * 1024);
    const digest = await store.putBlob(bytes);
    assert.equal(digest, digestOf(bytes));
    assert.equal(await other.hasBlob(digest), true);
    assert.ok((await other.getBlob(digest)).equals(bytes));
  });

  test('jetstream store — an object whose chunks are gone is reported damaged at once, and the next upload replaces it', async () => {
    const store = await fixture.open();
    const bytes = randomBytes(300_000);
    const digest = await store.putBlob(bytes);
    const nuid = await fixture.blobVersion(digest);
    await (await jetstreamManager(admin)).streams.purge(`OBJ_${prefix}-blobs`, { filter: `$O.${prefix}-blobs.C.${nuid}` });
    const reports: DamageReport[] = [];
    const reader = await fixture.openSecond!({ events: { damaged: (r) => reports.push(r) } });
    const started = Date.now();
    await assert.rejects(reader.getBlob(digest), (err: Error & { code?: string }) => err.code === 'LL_STORE_DAMAGED' && /has 0 of the \d+ chunks/.test(err.message));
    assert.ok(Date.now() - started < 2000, 'refused at once, not after a wait for chunks');
    assert.equal(await reader.hasBlob(digest), false);
    assert.deepEqual(reports.map((r) => [r.kind, r.file]), [['blob', fixture.names.blob(digest)]]);
    await reader.putBlob(bytes);
    assert.ok((await store.getBlob(digest)).equals(bytes));
  });

  test('jetstream store — the buckets are named after the prefix', async () => {
    const store = (await fixture.open()) as JetStreamStore;
    assert.deepEqual(store.buckets, { blobs: `${prefix}-blobs`, revisions: `${prefix}-revisions`, pointers: `${prefix}-pointers` });
  });

  /** Commits through `store`, retrying while the client reconnects and JetStream recovers its streams. */
  const commitOnceBack = async (store: ArtifactStore, manifest: string): Promise<void> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await store.commit('app', { manifest, artifacts: {} });
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  test('jetstream store — watch keeps working after the server restarts, also when the server forgot the watch', async () => {
    const watcher = await fixture.open();
    const writer = await fixture.openSecond!();
    const seen: PointerChange[] = [];
    watcher.watch!((c) => seen.push(c));
    await writer.commit('app', { manifest: 'before', artifacts: {} });
    await until(() => seen.length === 1, 5000);

    await server.kill();
    await server.restart();
    await commitOnceBack(writer, 'after a restart');
    await until(() => seen.length >= 2, 10_000);

    // A server that comes back without the watch's consumer (as when a client fails over to
    // another server of a cluster): the client alone would notice only after a minute of
    // missed heartbeats.
    await server.kill();
    await rm(path.join(server.dir, 'js', 'jetstream', '$G', 'streams', `KV_${prefix}-pointers`, 'obs'), { recursive: true, force: true });
    await server.restart();
    await commitOnceBack(writer, 'after a restart that lost the watch');
    await until(() => seen.length >= 3, 10_000);
    assert.deepEqual(seen, [{ app: 'app', current: 1 }, { app: 'app', current: 2 }, { app: 'app', current: 3 }]);
    assert.deepEqual((await watcher.revisions('app')).map((r) => r.manifest), ['before', 'after a restart', 'after a restart that lost the watch']);
  });
});

describe('jetstream store without its server', () => {
  test('jetstream store — with NATS gone, an operation fails as LL_UPSTREAM_UNAVAILABLE naming what it could not do', async () => {
    const server = await startNatsServer();
    const nc = await connectTo(server);
    const store = await JetStreamStore.open(nc, { timeoutMs: 300 });
    try {
      await store.commit('app', { manifest: 'one', artifacts: {} });
      await server.kill();
      await assert.rejects(store.current('app'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'LL_UPSTREAM_UNAVAILABLE');
        assert.match(err.message, /^Cannot read app 'app': the artifact store on NATS .* failed: .*Check that the NATS servers are up/);
        return true;
      });
      await server.restart();
      const deadline = Date.now() + 10_000;
      let current: number | undefined;
      while (current === undefined && Date.now() < deadline) {
        current = (await store.current('app').catch(() => undefined))?.number;
        if (current === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(current, 1, 'served again once NATS is back');
    } finally {
      await store.close();
      await nc.close();
      await server.close();
    }
  });
});

describe('jetstream store without jetstream', () => {
  test('jetstream store — a server without JetStream is a clear error naming -js', async () => {
    const port = await freePort();
    const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    try {
      await waitForPort(port, 10_000);
      const nc = await connect({ servers: `nats://127.0.0.1:${port}` });
      try {
        await assert.rejects(JetStreamStore.open(nc), (err: Error & { code?: string }) => {
          assert.match(err.message, /JetStream is not enabled/);
          assert.match(err.message, /start nats-server with -js/i);
          return true;
        });
      } finally {
        await nc.close();
      }
    } finally {
      proc.kill('SIGKILL');
    }
  });
});
