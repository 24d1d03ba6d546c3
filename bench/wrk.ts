// Helpers shared by the benchmarks: running wrk and reading its figures, medians, waiting for a server.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';

/** What one wrk run measured. */
export interface WrkResult {
  rps: number;
  /** Latency percentiles in milliseconds. */
  p50: number;
  p99: number;
  /** Non-2xx/3xx responses plus socket errors. */
  errors: number;
}

/** Options for {@link runWrk}. */
export interface WrkOptions {
  /** Open connections. @default 32 */
  connections?: number;
  /** Seconds to run. @default 5 */
  seconds?: number;
  /** Headers sent with every request, as `name: value`. @default none */
  headers?: string[];
}

function latencyMs(text: string, label: string): number {
  const m = new RegExp(`^\\s+${label}\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

/** Runs `wrk -t1 --latency` against `url` and parses its report. */
export async function runWrk(url: string, options: WrkOptions = {}): Promise<WrkResult> {
  const headers = (options.headers ?? []).flatMap((h) => ['-H', h]);
  const child = spawn('wrk', ['-t1', `-c${options.connections ?? 32}`, `-d${options.seconds ?? 5}s`, '--latency', ...headers, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${out}`);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: latencyMs(out, '50%'),
    p99: latencyMs(out, '99%'),
    errors: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
  };
}

export { median } from '../src/loadgen/index.js';

/** The p-th percentile (0–100) of a list of numbers. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** Polls `url` until it answers 2xx, for at most `ms`. */
export async function waitForHttp(url: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.text();
      if (res.ok) return;
    } catch {
      // Not up yet.
    }
    if (Date.now() > until) throw new Error(`${url} did not come up within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** User plus system CPU time a process has used, in seconds (from /proc; clock ticks of 10 ms). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
