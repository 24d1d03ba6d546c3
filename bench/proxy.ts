// Proxy benchmark: Lamplighter's gateway in front of a node:http upstream vs nginx as a reverse proxy
// to the same upstream; fixed-rate latency overhead; and the time a burst at zero takes to be answered.
// With --otlp, a second Lamplighter node with tracing on (exporting to a receiver in this process)
// is measured beside the first, tracing off, and the two are compared; --baseline DIR adds a node run
// from another build (a checkout at an older commit, built), to compare tracing off with no tracing code.
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
import { cpuSeconds, median, percentile, runWrk, waitForHttp, type WrkResult } from './wrk.js';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '1000' },
    cycles: { type: 'string', default: '12' },
    slice: { type: 'string', default: '1' },
    burst: { type: 'string', default: '1000' },
    otlp: { type: 'boolean', default: false },
    baseline: { type: 'string' },
  },
});
const DURATION = Number(flags.duration);
const CONNECTIONS = Number(flags.connections);
const ROUNDS = Number(flags.rounds);

const UPSTREAM_SOURCE = `require('http').createServer((q,s)=>{s.writeHead(200,{'content-type':'text/plain'});s.end('Hello from upstream\\n')}).listen(Number(process.env.PORT),'127.0.0.1')`;

/** Sends GETs on `pool` at a fixed rate for `seconds`, whatever the answers do; adds each latency (ms) to `into`. */
async function fixedRateSlice(pool: Pool, path: string, rate: number, seconds: number, into: number[]): Promise<void> {
  const total = rate * seconds;
  const start = performance.now();
  const inFlight: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now();
    inFlight.push(
      pool.request({ path, method: 'GET' }).then(async (res) => {
        await res.body.text();
        into.push(performance.now() - t);
      }),
    );
  }
  await Promise.all(inFlight);
}

/** An OTLP/HTTP receiver standing in for a collector: takes POST /v1/traces (JSON) and counts the spans. */
async function startSpanSink(port: number): Promise<{ spans: () => number; close: () => Promise<void> }> {
  let spans = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: unknown[] }> }> };
        for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans += ss.spans?.length ?? 0;
      } catch {
        // Counted as nothing; the node counts its own failures.
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { spans: () => spans, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** One counter's value from a node's /metrics text (summed over labels); 0 when absent. */
async function scrapeCounter(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Latencies (ms) of each target at a fixed rate, one list per cycle. */
type CycleLatencies = Map<string, number[][]>;

/**
 * Fixed-rate latency of several targets, measured so that they can be compared: each target keeps
 * one keep-alive client for the whole phase, and the targets take turns in short slices, in
 * forward then backward order, so a slow spell of a shared machine falls on all of them alike.
 */
async function interleavedFixedRate(targets: ReadonlyArray<[string, string]>, rate: number, cycles: number, sliceSeconds: number): Promise<CycleLatencies> {
  const clients = targets.map(([name, url]) => ({ name, path: new URL(url).pathname, pool: new Pool(new URL(url).origin, { connections: 16 }) }));
  const out: CycleLatencies = new Map(targets.map(([name]) => [name, []]));
  try {
    for (const c of clients) await fixedRateSlice(c.pool, c.path, rate, 1, []);
    for (let cycle = 0; cycle < cycles; cycle++) {
      const order = cycle % 2 === 0 ? clients : [...clients].reverse();
      for (const c of order) {
        const latencies: number[] = [];
        await fixedRateSlice(c.pool, c.path, rate, sliceSeconds, latencies);
        out.get(c.name)!.push(latencies);
      }
    }
  } finally {
    await Promise.all(clients.map((c) => c.pool.close()));
  }
  return out;
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
  const sink = flags.otlp ? await startSpanSink(18_305) : undefined;
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
    // The same app on a node with tracing on, exporting every request's spans to the sink above.
    const tracedGatewayPort = 18_306;
    const tracedAdminPort = 18_307;
    if (sink) {
      children.push(
        spawn(
          process.execPath,
          [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'up', appDir, '--port', String(tracedGatewayPort), '--admin-port', String(tracedAdminPort), '--data', path.join(work, 'data-traced'), '--otlp-endpoint', 'http://127.0.0.1:18305'],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        ),
      );
    }
    const viaTraced = `http://127.0.0.1:${tracedGatewayPort}/`;
    const baselinePort = 18_308;
    let baselineChild: ChildProcess | undefined;
    if (flags.baseline !== undefined) {
      baselineChild = spawn(
        process.execPath,
        [path.join(path.resolve(flags.baseline), 'dist', 'src', 'cli', 'main.js'), 'up', appDir, '--port', String(baselinePort), '--admin-port', '18309', '--data', path.join(work, 'data-baseline')],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      children.push(baselineChild);
    }
    const viaBaseline = `http://127.0.0.1:${baselinePort}/`;

    const direct = `http://127.0.0.1:${upstreamPort}/`;
    const viaNginx = `http://127.0.0.1:${nginxPort}/`;
    const viaLamplighter = `${gateway}/`;
    await waitForHttp(direct, 10_000);
    await waitForHttp(viaNginx, 10_000);
    await waitForHttp(viaLamplighter, 20_000);
    if (sink) await waitForHttp(viaTraced, 20_000);
    if (baselineChild) await waitForHttp(viaBaseline, 20_000);

    // Each target's serving process, whose CPU time per request is measured: the upstream itself,
    // nginx's one worker (a child of its master), Lamplighter's `up` process.
    const [upstreamChild, nginxChild, lamplighterChild] = children as [ChildProcess, ChildProcess, ChildProcess];
    const tracedChild = sink ? children[3] : undefined;
    const nginxWorker = Number((await readFile(`/proc/${nginxChild.pid}/task/${nginxChild.pid}/children`, 'utf8')).trim().split(/\s+/)[0]);
    const targets: Array<[string, string, number]> = [
      ['upstream direct (ceiling)', direct, upstreamChild.pid!],
      ['nginx 1 worker → upstream (peer)', viaNginx, nginxWorker],
      ['Lamplighter gateway → upstream', viaLamplighter, lamplighterChild.pid!],
    ];
    if (tracedChild) targets.push(['Lamplighter gateway, tracing on → upstream', viaTraced, tracedChild.pid!]);
    if (baselineChild) targets.push([`Lamplighter baseline build (${flags.baseline}) → upstream`, viaBaseline, baselineChild.pid!]);
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

    // Fixed-rate latency: every target's samples from all cycles are pooled, so its p99 is the
    // 1 % worst of cycles × slice × rate requests; the overhead is also worked out on each third
    // of the cycles, to show how much it moves within the run.
    const rate = Number(flags.rate);
    const cycles = Number(flags.cycles);
    const sliceSeconds = Number(flags.slice);
    const fixed = await interleavedFixedRate(
      [
        ['direct', direct],
        ['nginx', viaNginx],
        ['lamplighter', viaLamplighter],
        ...(sink ? ([['traced', viaTraced]] as Array<[string, string]>) : []),
        ...(baselineChild ? ([['baseline', viaBaseline]] as Array<[string, string]>) : []),
      ],
      rate,
      cycles,
      sliceSeconds,
    );
    const pooled = (name: string, from = 0, to = cycles): number[] => fixed.get(name)!.slice(from, to).flat();
    const latencyOf = (name: string): string => {
      const all = pooled(name);
      return `p50 ${percentile(all, 50).toFixed(3)} ms, p99 ${percentile(all, 99).toFixed(3)} ms, p99.9 ${percentile(all, 99.9).toFixed(3)} ms`;
    };
    const p99Overhead = (name: string, from?: number, to?: number): number => percentile(pooled(name, from, to), 99) - percentile(pooled('direct', from, to), 99);
    // Thirds of the cycles (as even as the count allows); none when there are fewer than three.
    const parts = cycles < 3 ? [] : [0, 1, 2].map((i) => p99Overhead('lamplighter', Math.round((i * cycles) / 3), Math.round(((i + 1) * cycles) / 3)));

    const tracing: string[] = [];
    if (baselineChild) {
      const baseRow = rows[rows.length - 1]!;
      tracing.push(
        '',
        `Tracing off against the baseline build, ${new Date().toISOString().slice(0, 10)}: ${oursRow.rps.toFixed(0)} vs ${baseRow.rps.toFixed(0)} req/s (${(oursRow.rps / baseRow.rps).toFixed(3)}×), ` +
          `CPU ${oursRow.cpuUs.toFixed(1)} vs ${baseRow.cpuUs.toFixed(1)} µs/request, p99 overhead at ${rate} req/s ${p99Overhead('lamplighter').toFixed(3)} vs ${p99Overhead('baseline').toFixed(3)} ms`,
      );
    }
    if (sink) {
      const tracedRow = rows[3]!;
      const metricsUrl = `http://127.0.0.1:${tracedAdminPort}/metrics`;
      // Whatever is still queued goes out within the export interval (1 s).
      await new Promise((r) => setTimeout(r, 1500));
      const dropped = await scrapeCounter(metricsUrl, 'lamplighter_spans_dropped_total');
      const exported = await scrapeCounter(metricsUrl, 'lamplighter_spans_exported_total');
      tracing.push(
        '',
        `Tracing (OTLP/HTTP to a receiver in the benchmark process), ${new Date().toISOString().slice(0, 10)}:`,
        `  throughput: off ${oursRow.rps.toFixed(0)} req/s, on ${tracedRow.rps.toFixed(0)} req/s: on/off ${(tracedRow.rps / oursRow.rps).toFixed(3)}×`,
        `  CPU µs/request: off ${oursRow.cpuUs.toFixed(1)}, on ${tracedRow.cpuUs.toFixed(1)}: on/off ${(tracedRow.cpuUs / oursRow.cpuUs).toFixed(3)}×`,
        `  p99 overhead over direct at ${rate} req/s: off ${p99Overhead('lamplighter').toFixed(3)} ms, on ${p99Overhead('traced').toFixed(3)} ms; pooled: on ${latencyOf('traced')}`,
        `  spans: ${exported.toLocaleString('en')} exported, ${dropped.toLocaleString('en')} dropped by the node; ${sink.spans().toLocaleString('en')} received`,
      );
    }

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
        `At a fixed ${rate} req/s, one keep-alive client per target, targets taking turns in ${sliceSeconds} s slices for ${cycles} cycles (${(rate * sliceSeconds * cycles).toLocaleString('en')} requests each), pooled:`,
        `  direct ${latencyOf('direct')}`,
        `  via nginx ${latencyOf('nginx')}`,
        `  via Lamplighter ${latencyOf('lamplighter')}`,
        `Lamplighter p99 overhead over direct: ${p99Overhead('lamplighter').toFixed(3)} ms [each third of the cycles: ${parts.map((o) => o.toFixed(2)).join(', ')}]; nginx's ${p99Overhead('nginx').toFixed(3)} ms   (goal < 1 ms)`,
        '',
        `Burst at zero: ${burstCount} concurrent requests to a process function at zero answered in ${burst.ms.toFixed(0)} ms (${burst.ok} × 200, instances peaked at ${burst.instances}, max 4)`,
        ...tracing,
      ].join('\n'),
    );
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
    await sink?.close();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
