// How long `lamplighter up` of a component app takes to answer its first request: the first time
// on a machine (transpile and compile, then the per-user cache is written) and again (the cache
// read). The second figure is the "a second up starts in under 3 s".
//
// Usage: node dist/bench/component-start.js [--rounds 3]
//
// Each round starts `up` as a child process on examples/hello-ts (built first if needed) with its
// own data directory, polls the gateway until the hello answers 200, and stops it with SIGINT.
// The first round runs on an empty XDG_CACHE_HOME; the others reuse it. Medians are reported.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { freePort, repoRoot } from '../src/testing/index.js';
import { helloComponentFile } from './hello-component.js';
import { median } from './wrk.js';

const { values: flags } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const ROUNDS = Math.max(1, Number(flags.rounds));
const CLI = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
/** Longest a start may take before the round is reported as failed. */
const START_LIMIT_MS = 120_000;

/** Starts `up` on `app`, returns ms from spawn to the first 200, then stops the node. */
async function timeUp(app: string, cacheHome: string): Promise<number> {
  const data = await mkdtemp(path.join(tmpdir(), 'lamplighter-start-data-'));
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'up', app, '--port', String(port), '--admin-port', '0', '--data', data, '--no-function-output'], {
    env: { ...process.env, XDG_CACHE_HOME: cacheHome },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    while (performance.now() - started < START_LIMIT_MS) {
      if (child.exitCode !== null) throw new Error(`up exited with ${child.exitCode}: ${stderr.trim()}`);
      const ok = await fetch(`http://127.0.0.1:${port}/hello`).then(
        async (res) => (await res.text(), res.status === 200),
        () => false,
      );
      if (ok) return performance.now() - started;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no answer within ${START_LIMIT_MS} ms: ${stderr.trim()}`);
  } finally {
    child.kill('SIGINT');
    await exited;
    await rm(data, { recursive: true, force: true });
  }
}

const work = await mkdtemp(path.join(tmpdir(), 'lamplighter-start-'));
try {
  const app = path.join(work, 'app');
  const source = path.join(repoRoot, 'examples', 'hello-ts');
  await mkdir(app);
  await copyFile(path.join(source, 'lamplighter.toml'), path.join(app, 'lamplighter.toml'));
  await copyFile(await helloComponentFile(), path.join(app, 'handler.wasm'));
  const cache = path.join(work, 'cache');
  const first: number[] = [];
  const again: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // An empty cache each round for the first start, then one start that reads it.
    await rm(cache, { recursive: true, force: true });
    first.push(await timeUp(app, cache));
    again.push(await timeUp(app, cache));
  }
  const ms = (n: number): string => `${(n / 1000).toFixed(2)} s`;
  console.log(`component up until the first answer (${new Date().toISOString().slice(0, 10)}, ${ROUNDS} rounds, medians)`);
  console.log(`  first up (empty cache: transpile + compile)  ${ms(median(first))}   [${first.map(ms).join(', ')}]`);
  console.log(`  second up (per-user cache read)              ${ms(median(again))}   [${again.map(ms).join(', ')}]`);
  console.log(`  ratio                                        ${(median(first) / median(again)).toFixed(1)}x faster; goal: second up under 3 s`);
} finally {
  await rm(work, { recursive: true, force: true });
}
