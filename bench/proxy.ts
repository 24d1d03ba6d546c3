// Proxy benchmark: Lamplighter's gateway in front of a node:http upstream vs nginx as a reverse proxy
// to the same upstream; fixed-rate latency overhead; and the time a burst at zero takes to be answered.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { repoRoot } from '../src/testing/index.js';
import { median, percentile, runWrk, waitForHttp, type WrkResult } from './wrk.js';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '1000' },
    burst: { type: 'string', default: '1000' },
  },
});
const DURATION = Number(flags.duration);
const CONNECTIONS = Number(flags.connections);
const ROUNDS = Number(flags.rounds);

const UPSTREAM_SOURCE = `require('http').createServer((q,s)=>{s.writeHead(200,{'content-type':'text/plain'});s.end('Hello from upstream\\n')}).listen(Number(process.env.PORT),'127.0.0.1')`;

/** User plus system CPU time a process has used, in seconds (from /proc; clock ticks of 10 ms). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Sends GETs at a fixed rate for `seconds`; returns each request's latency in ms. */
async function fixedRate(url: string, rate: number, seconds: number): Promise<number[]> {
  const { origin, pathname } = new URL(url);
  const pool = new Pool(origin, { connections: 16 });
  const latencies: number[] = [];
  const total = rate * seconds;
  const start = performance.now();
  const inFlight: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now();
    inFlight.push(
      pool.request({ path: pathname, method: 'GET' }).then(async (res) => {
        await res.body.text();
        latencies.push(performance.now() - t);
      }),
    );
  }
  await Promise.all(inFlight);
  await pool.close();
  return latencies;
}

/** Fires `count` concurrent GETs at a function at zero; samples its instance count meanwhile. */
async function burstAtZero(gateway: string, admin: string, token: string, count: number): Promise<{ ms: number; ok: number; instances: number }> {
  const instances = async (): Promise<number> => {
    const res = await fetch(`${admin}/v1/functions/burst`, { headers: { authorization: `Bearer ${token}` } });
    return ((await res.json()) as { instances: number }).instances;
  };
  if ((await instances()) !== 0) throw new Error('the burst function is not at zero');
  const agent = new http.Agent({ keepAlive: true, maxSockets: count });
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      most = Math.max(most, await instances());
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const start = performance.now();
  const statuses = await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<number>((resolve) => {
        http.get(`${gateway}/burst`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        }).on('error', () => resolve(0));
      }),
    ),
  );
  const ms = performance.now() - start;
  sampling = false;
  await sampler;
  most = Math.max(most, await instances());
  agent.destroy();
  return { ms, ok: statuses.filter((s) => s === 200).length, instances: most };
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'lamplighter-bench-proxy-'));
  const upstreamPort = 18_301;
  const nginxPort = 18_302;
  const children: ChildProcess[] = [];
  try {
    children.push(spawn(process.execPath, ['-e', UPSTREAM_SOURCE], { env: { PORT: String(upstreamPort) }, stdio: 'inherit' }));
    await writeFile(
      path.join(work, 'nginx.conf'),
      `worker_processes 1;\ndaemon off;\npid ${work}/nginx.pid;\nerror_log ${work}/error.log;\nevents { worker_connections 4096; }\n` +
        `http {\n  access_log off;\n  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }\n` +
        `  server {\n    listen 127.0.0.1:${nginxPort};\n    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }\n  }\n` +
        `  client_body_temp_path ${work}/body; proxy_temp_path ${work}/proxy; fastcgi_temp_path ${work}/fcgi; uwsgi_temp_path ${work}/uwsgi; scgi_temp_path ${work}/scgi;\n}\n`,
    );
    children.push(spawn('nginx', ['-c', path.join(work, 'nginx.conf'), '-p', work], { stdio: 'inherit' }));

    // Lamplighter runs as its own process, as a user runs it, so the load generators here do not
    // share its event loop.
    const gatewayPort = 18_303;
    const adminPort = 18_304;
    const appDir = path.join(work, 'app');
    const dataDir = path.join(work, 'data');
    await mkdir(appDir);
    await writeFile(path.join(appDir, 'upstream.js'), UPSTREAM_SOURCE);
    await writeFile(
      path.join(appDir, 'lamplighter.toml'),
      `name = "proxied"\n[[function]]\nname = "proxied"\nruntime = "process"\ncommand = ["node", "upstream.js"]\nroutes = ["/..."]\n[function.limits]\nconcurrency = 256\n[function.scale]\nmin = 1\nmax = 1\n\n` +
        `[[function]]\nname = "burst"\nruntime = "process"\ncommand = ["node", "upstream.js"]\nroutes = ["/burst"]\n[function.limits]\nconcurrency = 100\nmax_pending = 5000\ncold_start_timeout = "30s"\n[function.scale]\nmax = 4\nidle = "2s"\n`,
    );
    children.push(
      spawn(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'up', appDir, '--port', String(gatewayPort), '--admin-port', String(adminPort), '--data', dataDir], { stdio: ['ignore', 'ignore', 'inherit'] }),
    );
    const gateway = `http://127.0.0.1:${gatewayPort}`;
    const admin = `http://127.0.0.1:${adminPort}`;

    const direct = `http://127.0.0.1:${upstreamPort}/`;
    const viaNginx = `http://127.0.0.1:${nginxPort}/`;
    const viaLamplighter = `${gateway}/`;
    await waitForHttp(direct, 10_000);
    await waitForHttp(viaNginx, 10_000);
    await waitForHttp(viaLamplighter, 20_000);

    // Each target's serving process, whose CPU time per request is measured: the upstream itself,
    // nginx's one worker (a child of its master), Lamplighter's `up` process.
    const [upstreamChild, nginxChild, lamplighterChild] = children as [ChildProcess, ChildProcess, ChildProcess];
    const nginxWorker = Number((await readFile(`/proc/${nginxChild.pid}/task/${nginxChild.pid}/children`, 'utf8')).trim().split(/\s+/)[0]);
    const targets: Array<[string, string, number]> = [
      ['upstream direct (ceiling)', direct, upstreamChild.pid!],
      ['nginx 1 worker → upstream (peer)', viaNginx, nginxWorker],
      ['Lamplighter gateway → upstream', viaLamplighter, lamplighterChild.pid!],
    ];
    const results = new Map<string, Array<WrkResult & { cpuUs: number }>>(targets.map(([n]) => [n, []]));
    for (const [, url] of targets) await runWrk(url, { connections: CONNECTIONS, seconds: 1 });
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, url, pid] of targets) {
        const before = await cpuSeconds(pid);
        const run = await runWrk(url, { connections: CONNECTIONS, seconds: DURATION });
        const cpuUs = ((await cpuSeconds(pid)) - before) * 1e6 / (run.rps * DURATION);
        results.get(name)!.push({ ...run, cpuUs });
      }
    }
    const rows = targets.map(([name]) => {
      const rs = results.get(name)!;
      return { name, rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)), cpuUs: median(rs.map((x) => x.cpuUs)) };
    });
    const nginxRow = rows[1]!;
    const oursRow = rows[2]!;

    // Fixed-rate latency: a p99 of 3,000 samples is the 30th worst, so one stall moves it; the
    // three targets take turns for ROUNDS rounds and the medians of each round's figures are quoted.
    const rate = Number(flags.rate);
    const rounds = { base: [] as number[][], us: [] as number[][], them: [] as number[][] };
    for (let r = 0; r < ROUNDS; r++) {
      rounds.base.push(await fixedRate(direct, rate, 3));
      rounds.us.push(await fixedRate(viaLamplighter, rate, 3));
      rounds.them.push(await fixedRate(viaNginx, rate, 3));
    }
    const p50 = (runs: number[][]): number => median(runs.map((l) => median(l)));
    const p99 = (runs: number[][]): number => median(runs.map((l) => percentile(l, 99)));
    const overheads = rounds.us.map((l, i) => percentile(l, 99) - percentile(rounds.base[i]!, 99));

    const burstCount = Number(flags.burst);
    const token = (await readFile(path.join(dataDir, 'token'), 'utf8')).trim();
    const burst = await burstAtZero(gateway, admin, token, burstCount);

    console.log(
      [
        `Lamplighter proxy benchmark — wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${ROUNDS} alternating rounds, medians; ${new Date().toISOString().slice(0, 10)}`,
        '',
        '| target | req/s | p50 ms | p99 ms | CPU µs/request of the serving process |',
        '|---|---:|---:|---:|---:|',
        ...rows.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.cpuUs.toFixed(1)} |`),
        '',
        `Lamplighter / nginx throughput: ${(oursRow.rps / nginxRow.rps).toFixed(2)}×   (goal ≥ 0.70×)`,
        '',
        `At a fixed ${rate} req/s, 3 s per target, ${ROUNDS} alternating rounds, medians: direct p50 ${p50(rounds.base).toFixed(3)} ms p99 ${p99(rounds.base).toFixed(3)} ms; ` +
          `via nginx p50 ${p50(rounds.them).toFixed(3)} ms p99 ${p99(rounds.them).toFixed(3)} ms; ` +
          `via Lamplighter p50 ${p50(rounds.us).toFixed(3)} ms p99 ${p99(rounds.us).toFixed(3)} ms`,
        `Lamplighter p99 overhead over direct: ${median(overheads).toFixed(3)} ms median of rounds [${overheads.map((o) => o.toFixed(2)).join(', ')}]   (goal < 1 ms)`,
        '',
        `Burst at zero: ${burstCount} concurrent requests to a process function at zero answered in ${burst.ms.toFixed(0)} ms (${burst.ok} × 200, instances peaked at ${burst.instances}, max 4)`,
      ].join('\n'),
    );
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
    await rm(work, { recursive: true, force: true });
  }
}

await main();
