// The WASI host as a module sees it: real modules built from C, run on a real sandbox pool.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { compileWagiModule, packRunInput, SandboxPool, type CompiledWagiModule } from '../src/runtime/wasm/index.js';
import { wagiFixture } from '../src/testing/index.js';

/** Runs `name` with query arguments and returns its `key=value` output lines (after the headers). */
async function lines(pool: SandboxPool, module: CompiledWagiModule, args: string[]): Promise<Map<string, string>> {
  const argv = [`${module.key}.wasm`, ...args].map((x) => `${x}\0`).join('');
  const result = await pool.run({ key: module.key, module: module.module, memoryPages: [module.initialPages, module.maximumPages], input: packRunInput(argv, '', new Uint8Array(0)), maxStdout: 1 << 20, deadline: performance.now() + 10_000 });
  assert.equal(result.exitCode, 0, Buffer.from(result.stderr).toString());
  const body = Buffer.from(result.stdout).toString().split('\n\n')[1] ?? '';
  return new Map(body.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

const ms = (ns: bigint): number => Number(ns) / 1e6;

describe('wagi wasi', () => {
  const pool = new SandboxPool({ size: 1 });
  let clocks: CompiledWagiModule;
  let sockets: CompiledWagiModule;
  before(async () => {
    clocks = await compileWagiModule(await readFile(wagiFixture('clocks')), 16 << 20);
    sockets = await compileWagiModule(await readFile(wagiFixture('sockets')), 16 << 20);
    pool.start();
  });
  after(() => pool.close());

  test('wagi wasi — the monotonic and CPU-time clocks start at zero for each run, whatever the worker\'s age', async () => {
    // The worker has been up for a while: nothing of that may show.
    await new Promise((r) => setTimeout(r, 500));
    for (let run = 0; run < 2; run++) {
      const out = await lines(pool, clocks, []);
      for (const clock of ['monotonic', 'process_cputime', 'thread_cputime']) {
        const start = BigInt(out.get(`start_${clock}`) ?? '-1');
        assert.ok(start >= 0n && ms(start) < 50, `run ${run}: ${clock} starts at ${ms(start)} ms`);
      }
    }
  });

  test('wagi wasi — the CPU-time clocks count the run\'s own CPU time: spinning, not sleeping', async () => {
    const out = await lines(pool, clocks, ['spin_ms=40', 'sleep_ms=200']);
    const at = (when: string, clock: string): number => ms(BigInt(out.get(`${when}_${clock}`) ?? '-1'));
    const spinWall = at('spun', 'monotonic') - at('start', 'monotonic');
    const sleepWall = at('slept', 'monotonic') - at('spun', 'monotonic');
    assert.ok(spinWall >= 40, `spun for ${spinWall} ms`);
    assert.ok(sleepWall >= 195, `slept for ${sleepWall} ms`);
    for (const clock of ['process_cputime', 'thread_cputime']) {
      const spinCpu = at('spun', clock) - at('start', clock);
      const sleepCpu = at('slept', clock) - at('spun', clock);
      assert.ok(spinCpu > 0 && spinCpu <= spinWall + 1, `${clock}: ${spinCpu} ms of CPU in ${spinWall} ms spinning`);
      assert.ok(sleepCpu < 20, `${clock}: ${sleepCpu} ms of CPU in ${sleepWall} ms asleep`);
    }
  });

  test('wagi wasi — sock_* on stdio is ENOTSOCK, on a descriptor that is not open EBADF', async () => {
    const out = await lines(pool, sockets, []);
    const ENOTSOCK = '57';
    const EBADF = '8';
    for (const call of ['recv', 'send', 'shutdown', 'accept']) {
      for (const fd of ['stdin', 'stdout', 'stderr']) assert.equal(out.get(`${call}_${fd}`), ENOTSOCK, `sock_${call} on ${fd}`);
      assert.equal(out.get(`${call}_fd9`), EBADF, `sock_${call} on fd 9`);
    }
  });
});
