// Breaker micro-benchmark: the CPU a closed breaker adds per request (admit + done), against an
// empty loop of the same shape measured in the same run.
//
// Rounds alternate baseline and breaker so background noise hits both alike; each figure is the
// median of its rounds, in ns of process CPU (user + system) per request.
import { parseArgs } from 'node:util';
import type { BreakerTicket, CallOutcome } from '../src/admission/breaker-gate.js';
import { createBreakerGate, type PartitionedBreakers } from '../src/admission/breaker/index.js';
import type { LamplighterError } from '../src/errors/index.js';
import type { InvocationRequest } from '../src/instance/index.js';
import { parseManifest } from '../src/manifest/index.js';

const { values: flags } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000000' },
    rounds: { type: 'string', default: '7' },
    keys: { type: 'string', default: '10' },
  },
});
const REQUESTS = Number(flags.requests);
const ROUNDS = Number(flags.rounds);
const KEYS = Number(flags.keys);

const OK: CallOutcome = { status: 200, durationMs: 3 };

function gateFor(partition: string): PartitionedBreakers {
  const manifest = `name = "bench"\n[[function]]\nname = "f"\nsource = "f.wasm"\nroutes = ["/..."]\n[function.breaker]\npartition = "${partition}"\n`;
  return createBreakerGate(parseManifest(manifest).functions[0]!, { sweepIntervalMs: 0 })!;
}

/** Requests as the gateway hands them on, spread over `KEYS` tenants. */
const requests: InvocationRequest[] = Array.from({ length: KEYS }, (_, i) => ({
  id: `r${i}`,
  method: 'GET',
  url: '/orders/7',
  headers: { host: 'localhost', 'x-tenant': `tenant-${i}`, accept: '*/*' },
  body: undefined as unknown as InvocationRequest['body'],
  remoteAddress: '127.0.0.1',
  host: 'localhost',
  serverPort: 8080,
  route: { pattern: '/...', scriptName: '', pathInfo: '/orders/7' },
  signal: undefined as unknown as AbortSignal,
}));

/** The same call shape with nothing behind it: what the loop itself costs. */
class EmptyGate {
  reported = 0;
  readonly #ticket: BreakerTicket = { done: () => void this.reported++ };
  admit(_request: InvocationRequest): BreakerTicket | LamplighterError {
    return this.#ticket;
  }
}

function runBaseline(gate: EmptyGate, n: number): number {
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const t = gate.admit(requests[i % KEYS]!);
    if ('code' in t) refused++;
    else t.done(OK);
  }
  return refused;
}

function runBreaker(gate: PartitionedBreakers, n: number): number {
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const t = gate.admit(requests[i % KEYS]!);
    if ('code' in t) refused++;
    else t.done(OK);
  }
  return refused;
}

/** CPU ns per request of one round. */
function cpuPerRequest(run: () => number): number {
  const start = process.cpuUsage();
  const refused = run();
  const used = process.cpuUsage(start);
  if (refused !== 0) throw new Error(`${refused} requests refused by a breaker that should be closed`);
  return ((used.user + used.system) * 1000) / REQUESTS;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const empty = new EmptyGate();
const byHeader = gateFor('header:x-tenant');
const whole = gateFor('none');
const samples = { baseline: [] as number[], header: [] as number[], none: [] as number[] };
// One warm-up round each, so every loop is optimised before it is timed.
runBaseline(empty, REQUESTS);
runBreaker(byHeader, REQUESTS);
runBreaker(whole, REQUESTS);
for (let r = 0; r < ROUNDS; r++) {
  samples.baseline.push(cpuPerRequest(() => runBaseline(empty, REQUESTS)));
  samples.header.push(cpuPerRequest(() => runBreaker(byHeader, REQUESTS)));
  samples.none.push(cpuPerRequest(() => runBreaker(whole, REQUESTS)));
}
const baseline = median(samples.baseline);
const line = (name: string, xs: number[]): string => {
  const added = median(xs) - baseline;
  return `${name.padEnd(34)} ${median(xs).toFixed(1).padStart(7)} ns   +${added.toFixed(1).padStart(6)} ns   ${((added * 40_000) / 1e9 * 100).toFixed(3)}% of a core at 40k req/s`;
};
console.log(`Lamplighter breaker benchmark, ${new Date().toISOString().slice(0, 10)}, node ${process.version}: CPU per request, admit() + done() on a closed breaker`);
console.log(`${REQUESTS} requests a round, ${ROUNDS} alternating rounds, medians; ${KEYS} keys`);
console.log(`${'empty loop (baseline)'.padEnd(34)} ${baseline.toFixed(1).padStart(7)} ns`);
console.log(line('partition = "header:x-tenant"', samples.header));
console.log(line('partition = "none"', samples.none));
byHeader.close();
whole.close();
