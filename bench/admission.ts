// Micro-benchmark of admission on the hot path: the CPU each request spends in the steps between
// route lookup and an instance, against dispatch alone and against the timer the gateway used to
// keep itself, in the same run. No sockets: an instance that answers at once stands behind it.
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { AdmittedFunction, type BreakerGate } from '../src/admission/index.js';
import { Dispatcher } from '../src/dispatch/index.js';
import type { DispatchResult, Instance, InstanceFactory, InvocationResponse, RoutedRequest } from '../src/instance/index.js';
import { parseManifest, type FunctionSpec } from '../src/manifest/index.js';
import { Metrics } from '../src/observability/index.js';

const { values: flags } = parseArgs({ options: { requests: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' } } });
const REQUESTS = Number(flags.requests);
const ROUNDS = Number(flags.rounds);
/** Requests in flight at once: enough to exercise the promise machinery, few enough to stay in cache. */
const BATCH = 1000;

// A process function as the manifest makes it, with room for every request in flight at once.
const parsed = parseManifest('name = "bench"\n[[function]]\nname = "bench"\nruntime = "process"\ncommand = ["true"]\nroutes = ["/..."]\n[function.limits]\nmax_pending = 10\n[function.scale]\nmin = 1\nmax = 1\n').functions[0]!;
const spec: FunctionSpec = { ...parsed, limits: { ...parsed.limits, concurrency: 1_000_000 } };

const response: InvocationResponse = { status: 200, headers: [], body: Buffer.from('ok') };
const answered = Promise.resolve(response);
const instance: Instance = {
  id: 'bench-1',
  functionName: 'bench',
  state: 'ready',
  ready: Promise.resolve(),
  closed: new Promise(() => {}),
  handle: () => answered,
  drain: () => Promise.resolve(),
  stop: () => Promise.resolve(),
};
const factory: InstanceFactory = { create: () => instance, close: () => Promise.resolve() };

/** One request object reused: the cost measured is admission's, not the request's construction. */
const request: RoutedRequest = {
  id: 'bench',
  method: 'GET',
  url: '/',
  headers: {},
  body: Readable.from([]),
  remoteAddress: '127.0.0.1',
  host: '',
  serverPort: 0,
  route: { pattern: '/...', scriptName: '', pathInfo: '/' },
  signal: new AbortController().signal,
  aborted: false,
  abortReason: undefined,
  abort: () => {},
  onAbort: () => () => {},
};

/** A breaker that always admits and counts nothing: the price of the step itself. */
const closedGate: BreakerGate = { admit: () => ({ done: () => {} }), status: () => ({ partition: 'none', open: 0, keys: [] }), close: () => {} };

const dispatcher = new Dispatcher(spec, factory, { metrics: new Metrics(), log: () => {} });
await new Promise((resolve) => setTimeout(resolve, 10));
const admitted = new AdmittedFunction(dispatcher);
const withBreaker = new AdmittedFunction(dispatcher, { breaker: closedGate });

/** The gateway's own deadline timer around dispatch, as it was before admission was a step. */
function ownTimer(r: RoutedRequest): Promise<DispatchResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {}, spec.limits.timeoutMs);
    dispatcher.dispatch(r).then(
      (result) => {
        clearTimeout(timer);
        resolve(result);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

const cases: Array<[string, (r: RoutedRequest) => Promise<DispatchResult>]> = [
  ['dispatch alone', (r) => dispatcher.dispatch(r)],
  ['gateway timer + dispatch (before)', ownTimer],
  ['admission, no breaker', (r) => admitted.dispatch(r)],
  ['admission + closed breaker', (r) => withBreaker.dispatch(r)],
];

async function run(handler: (r: RoutedRequest) => Promise<DispatchResult>, count: number): Promise<number> {
  const before = process.cpuUsage();
  for (let sent = 0; sent < count; sent += BATCH) {
    const batch: Array<Promise<DispatchResult>> = new Array(BATCH);
    for (let i = 0; i < BATCH; i++) batch[i] = handler(request);
    await Promise.all(batch);
  }
  const cpu = process.cpuUsage(before);
  return (cpu.user + cpu.system) / count;
}

const figures = new Map<string, number[]>(cases.map(([name]) => [name, []]));
for (const [, handler] of cases) await run(handler, 50_000);
// Rounds alternate the cases so that noise on the machine falls on all of them alike.
for (let round = 0; round < ROUNDS; round++) for (const [name, handler] of cases) figures.get(name)!.push(await run(handler, REQUESTS));
console.log(`CPU per request, median of ${ROUNDS} rounds of ${REQUESTS} requests (${BATCH} in flight):`);
for (const [name, values] of figures) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(`  ${name.padEnd(36)} ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)} µs`);
}
await dispatcher.stop();
