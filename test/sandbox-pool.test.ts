// The sandbox pool on its own: runs on worker threads, deadlines, and taking runs back from a busy worker.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, describe, test } from 'node:test';
import { compileWagiModule, packRunInput, SandboxPool, type CompiledWagiModule } from '../src/runtime/wasm/index.js';
import { wagiFixture } from '../src/testing/index.js';

/** argv/environ as the WAGI runtime packs them: each string NUL-terminated, no stdin. */
function input(args: string[], env: string[] = []): ArrayBuffer {
  return packRunInput(args.map((x) => `${x}\0`).join(''), env.map((x) => `${x}\0`).join(''), new Uint8Array(0));
}

describe('sandbox pool', () => {
  const pool = new SandboxPool({ size: 2, stealAfterMs: 20 });
  after(() => pool.close());
  let counter: CompiledWagiModule;
  let slow: CompiledWagiModule;

  const run = (m: CompiledWagiModule, args: string[], timeoutMs = 5000) =>
    pool.run({ key: m.key, module: m.module, memoryPages: [m.initialPages, m.maximumPages], input: input(args), maxStdout: 1 << 20, deadline: performance.now() + timeoutMs });

  test('sandbox pool — an unused pool has no threads and no timer; starting it arms nothing', async () => {
    const idle = new SandboxPool({ size: 2 });
    assert.equal(idle.threads, 0, 'no worker thread before the pool is started');
    assert.equal(idle.watching, false, 'no watchdog before the first run');
    idle.start();
    assert.equal(idle.threads, 2);
    assert.equal(idle.watching, false, 'started threads alone arm nothing');
    await idle.close();
  });

  test('sandbox pool — runs a module and returns its output', async () => {
    counter = await compileWagiModule(await readFile(wagiFixture('counter')), 16 << 20);
    slow = await compileWagiModule(await readFile(wagiFixture('slow')), 16 << 20);
    const result = await run(counter, ['counter.wasm']);
    assert.equal(result.exitCode, 0);
    assert.match(Buffer.from(result.stdout).toString(), /counter=1/);
    assert.equal(pool.threads, 2, 'the first run started the threads');
    const until = performance.now() + 2000;
    while (pool.watching && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.equal(pool.watching, false, 'the watchdog stopped once no run was outstanding');
  });

  test('sandbox pool — runs not yet started are never lost when the gateway thread stalls (regression)', async () => {
    // Runs wait in the pool's outbox until the end of this turn of the event loop. Submitting them
    // from a timer and stalling there past the steal threshold lets the pool's watchdog (another
    // timer, due in the same phase) look at workers whose first run has not even been posted.
    const runs = await new Promise<Array<Promise<Awaited<ReturnType<typeof run>>>>>((resolve) =>
      setTimeout(() => {
        const submitted = Array.from({ length: 12 }, () => run(counter, ['counter.wasm']));
        const until = performance.now() + 80;
        while (performance.now() < until) {
          // Busy: keep this turn going past stealAfterMs.
        }
        resolve(submitted);
      }, 0),
    );
    const results = await Promise.race([
      Promise.all(runs),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('runs were lost')), 4000)),
    ]);
    for (const r of results) assert.match(Buffer.from(r.stdout).toString(), /counter=1/);
  });

  test('sandbox pool — runs queued behind a long run are taken back and finish first', async () => {
    const before = pool.stolen;
    const long = run(slow, ['slow.wasm', 'ms=600']);
    const started = performance.now();
    const quick = await Promise.all(Array.from({ length: 30 }, () => run(counter, ['counter.wasm']).then(() => performance.now() - started)));
    assert.ok(Math.max(...quick) < 500, `the slowest quick run took ${Math.max(...quick).toFixed(0)} ms`);
    assert.match(Buffer.from((await long).stdout).toString(), /slept=600/);
    assert.ok(pool.stolen > before, 'runs queued behind the long one were taken back');
  });

  test('sandbox pool — a runaway in the middle of a batch fails alone; the runs around it succeed (regression)', async () => {
    const loop = await compileWagiModule(await readFile(wagiFixture('loop')), 16 << 20);
    const replaced = pool.replacements;
    // Submitted in one turn, so they travel to the workers in the same batches.
    const before = run(counter, ['counter.wasm']);
    const runaway = run(loop, ['loop.wasm'], 300);
    const after = Array.from({ length: 6 }, () => run(counter, ['counter.wasm']));
    const started = performance.now();
    assert.match(Buffer.from((await before).stdout).toString(), /counter=1/);
    for (const r of await Promise.all(after)) assert.match(Buffer.from(r.stdout).toString(), /counter=1/);
    assert.ok(performance.now() - started < 2000, 'the quick runs did not wait for the runaway');
    await assert.rejects(runaway, /deadline/);
    const until = Date.now() + 2000;
    while (pool.replacements === replaced && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.equal(pool.replacements, replaced + 1, 'exactly one worker was replaced');
  });

  test('sandbox pool — a run past its deadline is rejected and its worker replaced', async () => {
    const replaced = pool.replacements;
    await assert.rejects(run(slow, ['slow.wasm', 'ms=2000'], 150), /deadline/);
    const until = Date.now() + 2000;
    while (pool.replacements === replaced && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.equal(pool.replacements, replaced + 1);
    assert.match(Buffer.from((await run(counter, ['counter.wasm'])).stdout).toString(), /counter=1/);
  });

  test('sandbox pool — a run that times out while queued inside a worker is withdrawn, never run (regression)', async () => {
    // One worker, no taking back: the runaway waits inside the worker behind a slow run.
    const single = new SandboxPool({ size: 1, maxWorkers: 1, stealAfterMs: 60_000 });
    try {
      const loop = await compileWagiModule(await readFile(wagiFixture('loop')), 16 << 20);
      const job = (m: CompiledWagiModule, args: string[], timeoutMs: number) =>
        single.run({ key: m.key, module: m.module, memoryPages: [m.initialPages, m.maximumPages], input: input(args), maxStdout: 1 << 20, deadline: performance.now() + timeoutMs });
      const long = job(slow, ['slow.wasm', 'ms=400'], 5000);
      const queued = job(loop, ['loop.wasm'], 100);
      await assert.rejects(queued, /deadline/);
      assert.match(Buffer.from((await long).stdout).toString(), /slept=400/);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(single.figures().busy, 0, 'the worker is not running the run nobody waits for');
      assert.equal(single.figures().replacedForTimeout, 0, 'the slow run finished on its worker');
      assert.match(Buffer.from((await job(counter, ['counter.wasm'], 2000)).stdout).toString(), /counter=1/);
    } finally {
      await single.close();
    }
  });

  test('sandbox pool — while one function\'s long runs hold every worker, one more starts for the others; its own runs wait in the pool', async () => {
    const fair = new SandboxPool({ size: 2, maxWorkers: 3, retireAfterMs: 200 });
    try {
      const loop = await compileWagiModule(await readFile(wagiFixture('loop')), 16 << 20);
      const job = (m: CompiledWagiModule, owner: string, timeoutMs: number) =>
        fair.run({ key: m.key, owner, module: m.module, memoryPages: [m.initialPages, m.maximumPages], input: input([`${owner}.wasm`]), maxStdout: 1 << 20, deadline: performance.now() + timeoutMs });
      const runaways = Array.from({ length: 4 }, () => job(loop, 'hog', 1500).catch((err: Error) => err));
      const until = performance.now() + 2000;
      while (fair.figures().held === 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 100));
      const started = performance.now();
      assert.match(Buffer.from((await job(counter, 'other', 1000)).stdout).toString(), /counter=1/);
      assert.ok(performance.now() - started < 800, 'another function found a free worker');
      const figures = fair.figures();
      assert.equal(figures.workers, 3, 'one worker started while every worker was held');
      assert.equal(figures.held, 2, `the runaway burst holds both workers: ${JSON.stringify(figures)}`);
      assert.equal(figures.queued, 2, `over its share, the runaway function's other runs wait in the pool: ${JSON.stringify(figures)}`);
      for (const r of await Promise.all(runaways)) assert.match(String(r), /deadline/);
      const idle = performance.now() + 3000;
      while (fair.threads > 2 && performance.now() < idle) await new Promise((r) => setTimeout(r, 20));
      assert.equal(fair.threads, 2, 'the extra worker retired once idle');
    } finally {
      await fair.close();
    }
  });

  test('sandbox pool — a long run\'s thread gets the lowest CPU priority, and the next run a normal one', async () => {
    const lowering = new SandboxPool({ size: 1, maxWorkers: 1 });
    try {
      const job = (m: CompiledWagiModule, args: string[]) =>
        lowering.run({ key: m.key, module: m.module, memoryPages: [m.initialPages, m.maximumPages], input: input(args), maxStdout: 1 << 20, deadline: performance.now() + 5000 });
      const long = job(slow, ['slow.wasm', 'ms=600']);
      const until = performance.now() + 500;
      while (lowering.figures().lowered === 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
      assert.equal(lowering.figures().lowered, 1, 'the thread of the run going past 100 ms was lowered');
      assert.match(Buffer.from((await long).stdout).toString(), /slept=600/);
      assert.equal(lowering.figures().lowered, 0, 'restored (or renewed) once the run ended');
      assert.match(Buffer.from((await job(counter, ['counter.wasm'])).stdout).toString(), /counter=1/);
    } finally {
      await lowering.close();
    }
  });

  test('sandbox pool — where a priority cannot be raised again, the thread of a long run is renewed after it', { skip: process.getuid?.() !== 0 && 'needs root to drop privileges with setpriv' }, async (t) => {
    // As an unprivileged user (nobody), a thread's nice value can go up but never down again.
    // (Without the test runner's context in its environment, the child runs as a plain script.)
    const pool = new URL('../src/runtime/wasm/index.js', import.meta.url).href;
    const script = `
      import { readFile } from 'node:fs/promises';
      import { performance } from 'node:perf_hooks';
      import { compileWagiModule, packRunInput, SandboxPool } from ${JSON.stringify(pool)};
      const load = async (name) => compileWagiModule(await readFile(${JSON.stringify(wagiFixture('x').replace(/x\.wasm$/, ''))} + name + '.wasm'), 16 << 20);
      const [slow, counter] = [await load('slow'), await load('counter')];
      const pool = new SandboxPool({ size: 1, maxWorkers: 1 });
      const alive = setInterval(() => {}, 1000); // the pool's threads and timer do not hold the process open
      const run = (m, args) => pool.run({ key: m.key, module: m.module, memoryPages: [m.initialPages, m.maximumPages], input: packRunInput(args.map((a) => a + '\\0').join(''), '', new Uint8Array(0)), maxStdout: 1 << 20, deadline: performance.now() + 10000 });
      const out = async (p) => Buffer.from((await p).stdout).toString().trim().split('\\n').pop();
      const lines = [await out(run(slow, ['slow.wasm', 'ms=300'])), 'lowered=' + pool.figures().lowered];
      lines.push(await out(run(counter, ['counter.wasm'])), await out(run(slow, ['slow.wasm', 'ms=300'])));
      console.log(lines.join(' '));
      await pool.close();
      clearInterval(alive);
    `;
    // A file, not -e: workers inherit -e and --input-type among the parent's options.
    const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-renew-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await chmod(dir, 0o755);
    await writeFile(path.join(dir, 'renew.mjs'), script, { mode: 0o644 });
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.join(dir, 'renew.mjs')], { timeout: 20_000, env }, (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out))),
    );
    assert.equal(stdout.trim(), 'slept=300 lowered=0 counter=1 slept=300');
  });

  test('sandbox pool — after a worker is replaced, runs go to a started worker, not wait for the new thread', async () => {
    const loop = await compileWagiModule(await readFile(wagiFixture('loop')), 16 << 20);
    const replaced = pool.replacements;
    await assert.rejects(run(loop, ['loop.wasm'], 100), /deadline/);
    const until = performance.now() + 2000;
    while (pool.replacements === replaced && performance.now() < until) await new Promise((r) => setTimeout(r, 1));
    assert.equal(pool.figures().starting, 1, 'the replacement is starting');
    assert.match(Buffer.from((await run(counter, ['counter.wasm'])).stdout).toString(), /counter=1/);
    assert.equal(pool.figures().starting, 1, 'the run was answered by the started worker while the new one was still starting');
  });

  test('sandbox pool — a function alone keeps every base worker, even while one of its runs is long', async () => {
    const started = performance.now();
    const long = run(slow, ['slow.wasm', 'ms=1500']);
    // Held past its share (one of two workers), the function still has the other worker for these.
    const short = await Promise.all(Array.from({ length: 3 }, () => run(slow, ['slow.wasm', 'ms=100']).then(() => performance.now() - started)));
    assert.ok(Math.max(...short) < 1000, `the short runs ended after ${short.map((t) => t.toFixed(0)).join(', ')} ms, not after the long one`);
    assert.match(Buffer.from((await long).stdout).toString(), /slept=1500/);
  });
});
