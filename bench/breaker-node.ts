// Breakers on a whole node: the CPU a node spends per request on a function with a closed
// breaker, against the same node serving the same upstream through a function without one.
//
// One `lamplighter up` process serves two process functions over one upstream program: `plain`
// (no breaker: the admission pipeline is the deadline and the pending cap) and `guarded`
// (`[function.breaker]` partitioned by a header, every request the same tenant). wrk drives them
// in alternating rounds; the figure is the node process's CPU time per request (from /proc), so
// neither wrk nor the upstream is counted. bench/breaker.ts measures the breaker alone, in ns.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../src/testing/index.js';
import { cpuSeconds, median, runWrk, waitForHttp, type WrkResult } from './wrk.js';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '6' },
  },
});
const DURATION = Number(flags.duration);
const CONNECTIONS = Number(flags.connections);
const ROUNDS = Number(flags.rounds);

const UPSTREAM_SOURCE = `require('http').createServer((q,s)=>{s.writeHead(200,{'content-type':'text/plain'});s.end('ok\\n')}).listen(Number(process.env.PORT),'127.0.0.1')`;

function processFunction(name: string, extra: string): string {
  return `[[function]]\nname = "${name}"\nruntime = "process"\ncommand = ["node", "upstream.js"]\nroutes = ["/${name}"]\n[function.limits]\nconcurrency = 256\n[function.scale]\nmin = 1\nmax = 1\n${extra}\n`;
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'lamplighter-bench-breaker-node-'));
  const children: ChildProcess[] = [];
  try {
    const gatewayPort = 18_311;
    const adminPort = 18_312;
    const appDir = path.join(work, 'app');
    await mkdir(appDir);
    await writeFile(path.join(appDir, 'upstream.js'), UPSTREAM_SOURCE);
    await writeFile(
      path.join(appDir, 'lamplighter.toml'),
      `name = "breakers"\n\n` + processFunction('plain', '') + '\n' + processFunction('guarded', '[function.breaker]\npartition = "header:x-tenant"'),
    );
    const node = spawn(
      process.execPath,
      [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'up', appDir, '--port', String(gatewayPort), '--admin-port', String(adminPort), '--data', path.join(work, 'data')],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    children.push(node);
    const targets: Array<[string, string]> = [
      ['breakers off (plain)', `http://127.0.0.1:${gatewayPort}/plain`],
      ['closed breaker (guarded)', `http://127.0.0.1:${gatewayPort}/guarded`],
    ];
    for (const [, url] of targets) await waitForHttp(url, 30_000);
    for (const [, url] of targets) await runWrk(url, { connections: CONNECTIONS, seconds: 1, headers: ['x-tenant: tenant-1'] });

    const results = new Map<string, Array<WrkResult & { cpuUs: number }>>(targets.map(([n]) => [n, []]));
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate which goes first, so a drift in the machine's load falls on both alike.
      const order = r % 2 === 0 ? targets : [...targets].reverse();
      for (const [name, url] of order) {
        const before = await cpuSeconds(node.pid!);
        const run = await runWrk(url, { connections: CONNECTIONS, seconds: DURATION, headers: ['x-tenant: tenant-1'] });
        if (run.errors > 0) throw new Error(`${name}: ${run.errors} failed requests`);
        const cpuUs = (((await cpuSeconds(node.pid!)) - before) * 1e6) / (run.rps * DURATION);
        results.get(name)!.push({ ...run, cpuUs });
      }
    }
    const rows = targets.map(([name]) => {
      const rs = results.get(name)!;
      return { name, rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)), cpuUs: median(rs.map((x) => x.cpuUs)), spread: rs.map((x) => x.cpuUs.toFixed(1)).join(' ') };
    });
    const [off, on] = rows as [(typeof rows)[0], (typeof rows)[0]];
    console.log(
      [
        `Breakers on a node — one \`up\` process, two process functions over one upstream, wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${ROUNDS} alternating rounds, medians; ${new Date().toISOString().slice(0, 10)}`,
        '',
        '| function | req/s | p50 ms | p99 ms | node CPU µs/request (each round) |',
        '|---|---:|---:|---:|---|',
        ...rows.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.cpuUs.toFixed(1)} (${r.spread}) |`),
        '',
        `closed breaker − breakers off: ${(on.cpuUs - off.cpuUs).toFixed(2)} µs CPU/request (goal < 1 µs); throughput ratio ${(on.rps / off.rps).toFixed(3)}×`,
        'Differences smaller than the rounds\' spread are noise; bench/breaker.ts measures the breaker alone.',
      ].join('\n'),
    );
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await rm(work, { recursive: true, force: true });
  }
}

await main();
