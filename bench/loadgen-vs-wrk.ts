// Compares `lamplighter bench` with wrk on the same hello server in the same run: requests/s and p50 latency.
//
// Usage: node dist/bench/loadgen-vs-wrk.js [-c 32] [-d 5] [--runs 3]
// The hello server runs in a child process so the load generators never share its thread. wrk and the
// load generator take turns, `runs` times each; the medians are compared. Exit status 1 when the
// load generator reaches less than 0.6× wrk's requests/s or its p50 is more than 20% off wrk's.
import { execFile, fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { median, runLoad } from '../src/loadgen/index.js';

const execFileAsync = promisify(execFile);

/** One measurement by either tool. */
interface Figures {
  rps: number;
  p50Ms: number;
}

function serve(): void {
  const body = Buffer.from('hello\n');
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
  });
  process.on('disconnect', () => process.exit(0));
}

function startServer(): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve({ child, port: m.port }));
    child.once('exit', (code) => reject(new Error(`hello server exited with ${code}`)));
  });
}

/** Converts wrk's "1.23ms" / "456.78us" / "1.20s" into milliseconds. */
function wrkMs(value: string, unit: string): number {
  const n = Number(value);
  switch (unit) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      throw new Error(`unknown wrk time unit '${unit}'`);
  }
}

async function runWrk(url: string, concurrency: number, seconds: number): Promise<Figures> {
  const { stdout } = await execFileAsync('wrk', ['-t1', `-c${concurrency}`, `-d${seconds}s`, '--latency', url]);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
  const p50 = /^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(stdout);
  if (!rps || !p50) throw new Error(`cannot read wrk's output:\n${stdout}`);
  return { rps: Number(rps[1]), p50Ms: wrkMs(p50[1] as string, p50[2] as string) };
}

async function runOurs(url: string, concurrency: number, seconds: number): Promise<Figures> {
  const result = await runLoad(url, { concurrency, durationMs: seconds * 1000 });
  // Total responses over wall time, the way wrk computes Requests/sec.
  return { rps: (result.requests * 1000) / result.durationMs, p50Ms: result.latency.p50 ?? Number.NaN };
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  const concurrency = flag('-c', 32);
  const seconds = flag('-d', 5);
  const runs = flag('--runs', 3);
  const { child, port } = await startServer();
  const url = `http://127.0.0.1:${port}/`;
  try {
    // Warm the server's JIT so the first tool measured is not at a disadvantage.
    await runLoad(url, { concurrency, durationMs: 1000 });
    const wrk: Figures[] = [];
    const ours: Figures[] = [];
    console.log(`hello server ${url}; ${runs} alternating runs of ${seconds}s at ${concurrency} connections`);
    for (let i = 0; i < runs; i++) {
      const w = await runWrk(url, concurrency, seconds);
      wrk.push(w);
      const o = await runOurs(url, concurrency, seconds);
      ours.push(o);
      console.log(
        `run ${i + 1}: wrk ${w.rps.toFixed(0)} req/s p50 ${w.p50Ms.toFixed(3)} ms | lamplighter ${o.rps.toFixed(0)} req/s p50 ${o.p50Ms.toFixed(3)} ms`,
      );
    }
    const wrkRps = median(wrk.map((f) => f.rps));
    const wrkP50 = median(wrk.map((f) => f.p50Ms));
    const ourRps = median(ours.map((f) => f.rps));
    const ourP50 = median(ours.map((f) => f.p50Ms));
    const rpsRatio = ourRps / wrkRps;
    const p50Ratio = ourP50 / wrkP50;
    const rpsOk = rpsRatio >= 0.6;
    const p50Ok = Math.abs(p50Ratio - 1) <= 0.2;
    console.log(`median wrk:         ${wrkRps.toFixed(0)} req/s, p50 ${wrkP50.toFixed(3)} ms`);
    console.log(`median lamplighter: ${ourRps.toFixed(0)} req/s, p50 ${ourP50.toFixed(3)} ms`);
    console.log(`requests/s ratio ${rpsRatio.toFixed(3)} (goal ≥ 0.6: ${rpsOk ? 'met' : 'missed'})`);
    console.log(`p50 ratio        ${p50Ratio.toFixed(3)} (goal within ±20%: ${p50Ok ? 'met' : 'missed'})`);
    if (!rpsOk || !p50Ok) process.exitCode = 1;
  } finally {
    child.disconnect();
    child.kill();
  }
}

if (process.argv.includes('--serve')) serve();
else await main();
