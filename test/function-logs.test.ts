// FunctionLogs on real files: rotation, reads across files, damaged lines, and a slow or failing disk that never makes a writer wait.
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { FunctionLogs, nodeLogFs, type FunctionLogEvents, type LogFs } from '../src/observability/index.js';

const roots: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-logs-'));
  roots.push(dir);
  return dir;
}
after(async () => {
  for (const dir of roots) await rm(dir, { recursive: true, force: true });
});

/** Events recorded for the assertions. */
function recorder(): { events: FunctionLogEvents; dropped: Map<string, number>; damaged: Map<string, number>; notices: string[] } {
  const dropped = new Map<string, number>();
  const damaged = new Map<string, number>();
  const notices: string[] = [];
  return {
    dropped,
    damaged,
    notices,
    events: {
      dropped: (fn, sink, count) => dropped.set(`${fn}/${sink}`, (dropped.get(`${fn}/${sink}`) ?? 0) + count),
      damaged: (fn, count) => damaged.set(fn, (damaged.get(fn) ?? 0) + count),
      notice: (_level, _fields, message) => notices.push(message),
    },
  };
}

/** A file system whose writes wait until `release()` (a disk that stalls), or fail with EIO while `failing`. */
function faultyFs(): { fs: LogFs; stall(): void; release(): void; failing: boolean; writes: number } {
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  const state = {
    failing: false,
    writes: 0,
    stall(): void {
      gate = new Promise((resolve) => (open = resolve));
    },
    release(): void {
      open?.();
      gate = undefined;
    },
    fs: undefined as unknown as LogFs,
  };
  state.fs = {
    ...nodeLogFs,
    async openAppend(file) {
      const handle = await nodeLogFs.openAppend(file);
      return {
        size: handle.size,
        close: () => handle.close(),
        async write(data) {
          if (gate) await gate;
          if (state.failing) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
          state.writes++;
          await handle.write(data);
        },
      };
    },
  };
  return state;
}

describe('function logs on disk', () => {
  test('function logs — lines are written as JSON lines under <dir>/<function>/current.log and read back', async () => {
    const dir = await tempDir();
    const logs = new FunctionLogs({ dir });
    logs.write('hello', 'stdout', 'one\ntwo\r\n');
    logs.write('hello', 'stderr', 'three');
    logs.write('other', 'platform', 'elsewhere');
    const { lines, damaged } = await logs.read(['hello']);
    assert.deepEqual(lines.map((l) => [l.function, l.stream, l.text]), [['hello', 'stdout', 'one'], ['hello', 'stdout', 'two'], ['hello', 'stderr', 'three']]);
    assert.equal(damaged, 0);
    const file = await readFile(path.join(dir, 'hello', 'current.log'), 'utf8');
    assert.deepEqual(file.trimEnd().split('\n').map((l) => (JSON.parse(l) as { text: string }).text), ['one', 'two', 'three']);
    await logs.close();
  });

  test('function logs — a new instance on the same directory reads what an earlier one wrote', async () => {
    const dir = await tempDir();
    const first = new FunctionLogs({ dir });
    first.write('hello', 'stdout', 'before the restart');
    await first.close();
    const second = new FunctionLogs({ dir });
    second.write('hello', 'stdout', 'after the restart');
    assert.deepEqual((await second.read(['hello'])).lines.map((l) => l.text), ['before the restart', 'after the restart']);
    await second.close();
  });

  test('function logs — files rotate by size, keep maxFiles, and reads cross them in order', async () => {
    const dir = await tempDir();
    const logs = new FunctionLogs({ dir, maxBytes: 1000, maxFiles: 3 });
    // Each line is about 90 bytes as JSON; written a batch at a time so rotation happens between batches.
    for (let i = 0; i < 60; i++) {
      logs.write('rot', 'stdout', `line ${String(i).padStart(3, '0')} ${'x'.repeat(20)}`);
      if (i % 5 === 4) await logs.read(['rot'], { tail: 0 });
    }
    await logs.read(['rot'], { tail: 0 });
    const files = (await readdir(path.join(dir, 'rot'))).sort();
    assert.deepEqual(files, ['current.log', 'current.log.1', 'current.log.2']);
    for (const f of files) assert.ok((await stat(path.join(dir, 'rot', f))).size <= 1000, `${f} is at most maxBytes`);
    const all = (await logs.read(['rot'])).lines.map((l) => Number(l.text.slice(5, 8)));
    assert.ok(all.length > 10 && all.length < 60, `older files went at rotation: ${all.length} lines left`);
    assert.deepEqual(all, Array.from({ length: all.length }, (_, i) => 60 - all.length + i), 'in order, ending with the newest');
    assert.deepEqual((await logs.read(['rot'], { tail: 25 })).lines.map((l) => Number(l.text.slice(5, 8))), all.slice(-25));
    await logs.close();
  });

  test('function logs — files are read from the end back: long lines across chunks and multibyte text come back whole', async () => {
    const dir = await tempDir();
    const logs = new FunctionLogs({ dir });
    const texts = Array.from({ length: 40 }, (_, i) => (i % 7 === 3 ? `long ${i} ${'é€𝄞'.repeat(10_000)}` : `short ${i} ünïcödé ${'z'.repeat(i * 97)}`));
    for (const text of texts) logs.write('wide', 'stdout', text);
    const all = await logs.read(['wide']);
    assert.equal(all.damaged, 0);
    assert.equal(all.lines.length, texts.length);
    assert.ok(all.lines.every((l, i) => l.text === texts[i]), 'every line read back as written');
    for (const tail of [1, 4, 17]) assert.deepEqual((await logs.read(['wide'], { tail })).lines.map((l) => l.text), texts.slice(-tail));
    await logs.close();
  });

  test('function logs — since keeps lines at or after a time, tail the last N, merged across functions', async () => {
    const dir = await tempDir();
    for (const [fn, lines] of [
      ['a', [[1000, 'a1'], [3000, 'a3'], [5000, 'a5']]],
      ['b', [[2000, 'b2'], [4000, 'b4']]],
    ] as const) {
      await mkdir(path.join(dir, fn), { recursive: true });
      await writeFile(path.join(dir, fn, 'current.log'), lines.map(([time, text]) => `${JSON.stringify({ time, function: fn, stream: 'stdout', text })}\n`).join(''));
    }
    const logs = new FunctionLogs({ dir });
    const texts = async (options: { since?: number; tail?: number }): Promise<string[]> => (await logs.read(['a', 'b'], options)).lines.map((l) => l.text);
    assert.deepEqual(await texts({}), ['a1', 'b2', 'a3', 'b4', 'a5']);
    assert.deepEqual(await texts({ since: 3000 }), ['a3', 'b4', 'a5']);
    assert.deepEqual(await texts({ tail: 2 }), ['b4', 'a5']);
    assert.deepEqual(await texts({ since: 2000, tail: 2 }), ['b4', 'a5']);
    assert.deepEqual(await texts({ tail: 0 }), []);
    await logs.close();
  });

  test('function logs — a damaged line is skipped and counted; a torn last line gets its newline before the next write', async () => {
    const dir = await tempDir();
    const rec = recorder();
    const first = new FunctionLogs({ dir, events: rec.events });
    first.write('torn', 'stdout', 'whole line');
    await first.close();
    const file = path.join(dir, 'torn', 'current.log');
    // Garbage in the middle, and the start of a line a crash cut short at the end.
    await appendFile(file, 'not json at all\n{"time":12,"stream":"stdout"}\n{"time":1733193000000,"function":"torn","stre');
    const second = new FunctionLogs({ dir, events: rec.events });
    const before = await second.read(['torn']);
    assert.deepEqual(before.lines.map((l) => l.text), ['whole line']);
    assert.equal(before.damaged, 2, 'the unended last line is not counted yet: it may be being written');
    second.write('torn', 'stdout', 'after the crash');
    const afterCrash = await second.read(['torn']);
    assert.deepEqual(afterCrash.lines.map((l) => l.text), ['whole line', 'after the crash'], 'the line after the torn one is whole');
    assert.equal(afterCrash.damaged, 3, 'the torn line, ended now, is counted');
    assert.equal(rec.damaged.get('torn'), 5, 'counted at each read');
    await second.close();
  });

  test('function logs — a stalled disk never makes write() wait; past the buffer lines are dropped, counted and noted once', async () => {
    const dir = await tempDir();
    const rec = recorder();
    const disk = faultyFs();
    const logs = new FunctionLogs({ dir, fs: disk.fs, bufferBytes: 4096, events: rec.events });
    logs.write('slow', 'stdout', 'first');
    await logs.read(['slow'], { tail: 0 }); // the file is open
    disk.stall();
    logs.write('slow', 'stdout', 'stuck in the write');
    await new Promise((resolve) => setImmediate(resolve));
    const started = performance.now();
    for (let i = 0; i < 500; i++) logs.write('slow', 'stdout', `while stalled ${i} ${'y'.repeat(40)}`);
    const ms = performance.now() - started;
    assert.ok(ms < 200, `500 writes to a stalled disk took ${ms.toFixed(1)} ms`);
    const dropped = rec.dropped.get('slow/file') ?? 0;
    assert.ok(dropped > 400 && dropped < 500, `most lines past the 4 KiB buffer dropped: ${dropped}`);
    assert.equal(rec.notices.filter((n) => /dropping log lines of function 'slow'/.test(n)).length, 1, rec.notices.join('\n'));
    disk.release();
    const kept = (await logs.read(['slow'])).lines.map((l) => l.text);
    assert.equal(kept.length, 2 + 500 - dropped, 'what the buffer held reaches the disk');
    assert.deepEqual(kept.slice(0, 2), ['first', 'stuck in the write']);
    await logs.close();
  });

  test('function logs — a failing disk drops and counts, notes it once, and recovers', async () => {
    const dir = await tempDir();
    const rec = recorder();
    const disk = faultyFs();
    const logs = new FunctionLogs({ dir, fs: disk.fs, events: rec.events });
    disk.failing = true;
    for (let i = 0; i < 3; i++) {
      logs.write('sick', 'stderr', `lost ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // The lines written during the backoff are tried (and fail) once it ends.
    const dropDeadline = Date.now() + 3000;
    while ((rec.dropped.get('sick/file') ?? 0) < 3 && Date.now() < dropDeadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(rec.dropped.get('sick/file'), 3, 'every line of a failed write is counted');
    assert.equal(rec.notices.filter((n) => /cannot write the log of function 'sick'.*EIO/.test(n)).length, 1, rec.notices.join('\n'));
    assert.equal(rec.notices.filter((n) => /dropping log lines of function 'sick'/.test(n)).length, 1);
    disk.failing = false;
    logs.write('sick', 'stderr', 'kept again');
    // Retries back off up to 5 s; the first few retries come within a second.
    const deadline = Date.now() + 3000;
    while (!rec.notices.some((n) => /works again/.test(n)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.deepEqual((await logs.read(['sick'])).lines.map((l) => l.text), ['kept again']);
    assert.ok(rec.notices.some((n) => /writing the log of function 'sick' works again/.test(n)), rec.notices.join('\n'));
    await logs.close();
  });

  test('function logs — a forgotten function keeps its files, readable by name, and appends if it returns', async () => {
    const dir = await tempDir();
    const logs = new FunctionLogs({ dir });
    logs.write('gone', 'stdout', 'before removal');
    await logs.read(['gone']);
    logs.forget('gone');
    assert.deepEqual(logs.recent(['gone']), []);
    assert.equal(await logs.hasFiles('gone'), true);
    assert.equal(await logs.hasFiles('never'), false);
    assert.equal(await logs.hasFiles('../etc'), false, 'only function names are looked up');
    logs.write('gone', 'stdout', 'back again');
    assert.deepEqual((await logs.read(['gone'])).lines.map((l) => l.text), ['before removal', 'back again']);
    await logs.close();
  });
});
