// A node restoring from a damaged store: falls back to the newest intact revision, logs, counts, and says so in `ls`.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { AppStatus } from '../src/control/index.js';
import { FileStore } from '../src/store/index.js';
import { startTestNode, type TestNode } from '../src/testing/index.js';
import { killAllChildren, runCli } from './cli-helpers.js';
import { capturingLogger, HELLO, NEW, NEW_TEXT, OLD, OLD_TEXT, OUTPUT } from './store-helpers.js';



const ERROR = 50;

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  return { status: res.status, text: await res.text() };
}

describe('store restore', () => {
  const dirs: string[] = [];
  const nodes: TestNode[] = [];
  after(async () => {
    killAllChildren();
    for (const node of nodes) await node.close().catch(() => undefined);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /** A data dir holding revision 1 (OLD) and revision 2 (NEW, current) of 'app'. */
  const seeded = async () => {
    const data = await mkdtemp(path.join(tmpdir(), 'lamplighter-restore-'));
    dirs.push(data);
    const store = await FileStore.open(data);
    const hello = await store.putBlob(await readFile(HELLO));
    const output = await store.putBlob(await readFile(OUTPUT));
    await store.commit('app', { manifest: OLD, artifacts: { 'app.wasm': hello } });
    await store.commit('app', { manifest: NEW, artifacts: { 'app.wasm': output } });
    const revisionFile = (n: number) => path.join(data, 'apps', 'app', 'revisions', `${n}.json`);
    const blobFile = (digest: string) => path.join(data, 'blobs', 'sha256', digest.slice(0, 2), digest);
    return { data, hello, output, revisionFile, pointer: path.join(data, 'apps', 'app', 'current'), blobFile };
  };

  const start = async (data: string) => {
    const { logger, lines } = capturingLogger();
    const node = await startTestNode({ dataDir: data, logger, adminPort: 0, sandboxWorkers: 1 });
    nodes.push(node);
    return { node, lines };
  };

  const damagedCount = async (node: TestNode, kind: string): Promise<number> => {
    const text = await node.platform.metrics.render();
    const m = text.match(new RegExp(`^lamplighter_store_damaged_files_total\\{kind="${kind}"\\} (\\d+)$`, 'm'));
    return m ? Number(m[1]) : 0;
  };

  const adminApps = async (node: TestNode): Promise<AppStatus[]> => {
    const res = await fetch(`${node.adminUrl}/v1/apps`, { headers: { authorization: `Bearer ${node.platform.token}` } });
    return ((await res.json()) as { apps: AppStatus[] }).apps;
  };

  const cases: Array<{ name: string; kind: string; damage: (s: Awaited<ReturnType<typeof seeded>>) => Promise<string>; served: number; note: RegExp }> = [
    { name: 'an empty current revision file', kind: 'revision', served: 1, note: /current revision 2 damaged: .*2\.json is empty/, damage: async (s) => (await writeFile(s.revisionFile(2), ''), s.revisionFile(2)) },
    {
      name: 'a truncated current revision file',
      kind: 'revision',
      served: 1,
      note: /current revision 2 damaged: .*2\.json is not valid JSON/,
      damage: async (s) => {
        const text = await readFile(s.revisionFile(2), 'utf8');
        await writeFile(s.revisionFile(2), text.slice(0, 60));
        return s.revisionFile(2);
      },
    },
    { name: 'a current pointer naming no revision', kind: 'pointer', served: 2, note: /current revision 7 damaged: .*current names revision 7, which does not exist/, damage: async (s) => (await writeFile(s.pointer, '7'), s.pointer) },
    { name: 'a current pointer holding no number', kind: 'pointer', served: 2, note: /the current pointer is damaged: .*current does not hold a revision number/, damage: async (s) => (await writeFile(s.pointer, '{"2"'), s.pointer) },
    {
      name: "a current revision's blob that does not match its digest",
      kind: 'blob',
      served: 1,
      note: /current revision 2 damaged: .*The artifact with sha256 [0-9a-f]{64} is damaged/,
      damage: async (s) => {
        const bytes = await readFile(s.blobFile(s.output));
        bytes[bytes.length - 1] ^= 1;
        await writeFile(s.blobFile(s.output), bytes);
        return s.blobFile(s.output);
      },
    },
  ];

  for (const c of cases) {
    test(`store restore — ${c.name} falls back to revision ${c.served}, logs the file, counts it, and ls says so`, async () => {
      const s = await seeded();
      const file = await c.damage(s);
      const { node, lines } = await start(s.data);

      const res = await get(`${node.url}/app`);
      assert.equal(res.status, 200, 'the app is served, never silently absent');
      assert.equal(res.text, c.served === 1 ? OLD_TEXT : NEW_TEXT);

      const named = lines.filter((l) => l.level >= ERROR && l.msg.includes(file));
      assert.ok(named.length >= 1, `an error naming ${file}; log: ${JSON.stringify(lines)}`);
      assert.equal(await damagedCount(node, c.kind), 1);

      const [app] = node.platform.list();
      assert.equal(app?.revision, c.served);
      assert.equal(app?.restored?.revision, c.served);
      assert.match(app?.restored?.message ?? '', new RegExp(`^restored from revision ${c.served} \\(`));
      assert.match(app?.restored?.message ?? '', c.note);
      const [listed] = await adminApps(node);
      assert.deepEqual(listed?.restored, app?.restored, 'the admin API shows the same note');
      assert.ok(lines.some((l) => l.level >= ERROR && l.msg === `app 'app' ${app?.restored?.message}`), 'the fallback itself is logged');

      // A deploy repairs it: a new revision, the note gone.
      await node.deploy(`${NEW}[function.env]\nX = "1"\n`, { 'app.wasm': OUTPUT });
      const [after] = node.platform.list();
      assert.equal(after?.restored, undefined);
      assert.ok((after?.revision ?? 0) > 2);
      assert.equal((await get(`${node.url}/app`)).text, NEW_TEXT);
    });
  }

  test('store restore — ls prints the app as restored from revision N', async () => {
    const s = await seeded();
    await writeFile(s.revisionFile(2), '{"app": "app", "num');
    const { node } = await start(s.data);
    const out = await runCli(['ls', '--server', node.adminUrl, '--token', node.platform.token]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^app\s+1\s+app\s+wagi/m);
    assert.match(out.stdout, new RegExp(`App 'app' restored from revision 1 \\(current revision 2 damaged: ${s.revisionFile(2).replace(/[.]/g, '\\.')} is not valid JSON`));
  });

  test('store restore — an app with no intact revision is listed as not serving, with why', async () => {
    const s = await seeded();
    await writeFile(s.revisionFile(1), '');
    await writeFile(s.revisionFile(2), 'null');
    const { node, lines } = await start(s.data);
    assert.equal((await get(`${node.url}/app`)).status, 404);
    const [app] = node.platform.list();
    assert.equal(app?.name, 'app');
    assert.deepEqual(app?.functions, []);
    assert.equal(app?.restored?.revision, undefined);
    assert.match(app?.restored?.message ?? '', /^not serving: no revision could be restored \(current revision 2 damaged: .*2\.json is not a revision/);
    assert.equal(await damagedCount(node, 'revision'), 2);
    assert.ok(lines.some((l) => l.level >= ERROR && l.msg.includes(s.revisionFile(1))));
    await assert.rejects(node.platform.rollback('app', 2), (err: Error & { code?: string }) => err.code === 'LL_STORE_DAMAGED' && err.message.includes(s.revisionFile(2)));
    // Deploying it again brings it back as revision 3; the damaged files keep their numbers.
    const revision = await node.deploy(OLD, { 'app.wasm': HELLO });
    assert.equal(revision.number, 3);
    assert.equal((await get(`${node.url}/app`)).text, OLD_TEXT);
    assert.equal(node.platform.list()[0]?.restored, undefined);
  });

  test('store restore — damage is detected at deploy: a damaged blob is reported and uploaded again, a damaged revision or pointer is reported', async () => {
    const s = await seeded();
    const { node, lines } = await start(s.data);
    assert.equal((await get(`${node.url}/app`)).text, NEW_TEXT);
    const bytes = await readFile(s.blobFile(s.output));
    await writeFile(s.blobFile(s.output), bytes.subarray(0, 100));
    await writeFile(s.revisionFile(1), '');
    await writeFile(s.pointer, '2x');

    // The CLI's upload step asks which blobs are missing: the damaged one is.
    const res = await fetch(`${node.adminUrl}/v1/blobs/missing`, {
      method: 'POST',
      headers: { authorization: `Bearer ${node.platform.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ digests: [s.output, s.hello] }),
    });
    assert.deepEqual(await res.json(), { missing: [s.output] });
    assert.equal(await damagedCount(node, 'blob'), 1);
    assert.ok(lines.some((l) => l.level >= ERROR && l.msg.includes(s.blobFile(s.output)) && l.msg.includes('not the')));

    const revision = await node.deploy(`${NEW}[function.env]\nX = "1"\n`, { 'app.wasm': OUTPUT });
    assert.equal(revision.number, 3);
    assert.deepEqual(await readFile(s.blobFile(s.output)), bytes, 'the deploy stored the blob again');
    assert.equal((await get(`${node.url}/app`)).text, NEW_TEXT);
    assert.equal(await damagedCount(node, 'revision'), 1, 'the deploy read every revision and found 1.json damaged');
    assert.ok(lines.some((l) => l.level >= ERROR && l.msg.includes(s.revisionFile(1))));
    assert.equal(await damagedCount(node, 'pointer'), 1, 'and the pointer it replaced');
    assert.ok(lines.some((l) => l.level >= ERROR && l.msg.includes(s.pointer)));
    assert.ok((await readdir(path.join(s.data, 'damaged'))).some((n) => n.startsWith(s.output)), 'the damaged blob is kept aside');
  });
});
