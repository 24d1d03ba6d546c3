// Component worker thread: serves one request at a time, each in a fresh component instance.
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { parseOutboundRules } from './outbound-policy.js';
import { ComponentHost, DeadlineExceeded, GuestExit, type HostChannel } from './wasi-host.js';
import type { ComponentWorkerData, FromWorker, RunFailure, RunRequest, ToWorker } from './component-protocol.js';

type HandlerExport = { handle(request: unknown, responseOut: unknown): void };
type Root = Record<string, HandlerExport | undefined>;
type Instantiate = (getCoreModule: (path: string) => WebAssembly.Module, imports: Record<string, unknown>) => Root;

// Node 20 has no JSPI. The bindings probe for WebAssembly.promising in a try/catch on every
// instantiation, and V8 words the resulting "is not a function" error by re-parsing the whole
// bindings function: about 7 ms per probe, twice per request. A stub that throws a ready-made
// error keeps the same fallback at no cost.
const wasm = WebAssembly as unknown as { promising?: unknown };
if (wasm.promising === undefined) {
  const unsupported = new TypeError('WebAssembly.promising is not supported in this Node.js');
  wasm.promising = (): never => {
    throw unsupported;
  };
}

const data = workerData as ComponentWorkerData;
const port = data.port as unknown as MessagePort;
const signal = new Int32Array(data.signal);

const channel: HostChannel = {
  post(message: FromWorker, transfer?: ArrayBuffer[]): void {
    port.postMessage(message, transfer);
  },
  pump(): boolean {
    // Messages are taken only while a request runs; outside one (e.g. while the next instance is
    // being lit) they wait in the port and arrive as events once the worker is idle again.
    if (!host.active) return false;
    let any = false;
    for (let i = 0; i < 10_000; i++) {
      const received = receiveMessageOnPort(port);
      if (!received) break;
      any = true;
      onMessage(received.message as ToWorker);
    }
    return any;
  },
  wait(ms: number): void {
    const seen = Atomics.load(signal, 0);
    if (this.pump()) return;
    if (!host.active) {
      Atomics.wait(signal, 1, 0, Math.max(0, ms));
      return;
    }
    Atomics.wait(signal, 0, seen, Math.max(0, ms));
    this.pump();
  },
};

const host = new ComponentHost({ channel, env: data.env, outbound: parseOutboundRules(data.allowedOutboundHosts) });

let instantiate: Instantiate | undefined;
let warm: Root | undefined;
let busy = false;

function fresh(): Root {
  if (!instantiate) throw new Error('component bindings are not loaded');
  return instantiate((path) => {
    const module = data.modules[path];
    if (!module) throw new Error(`component core module ${path} is missing`);
    return module;
  }, host.imports);
}

function describe(err: unknown): RunFailure {
  if (err instanceof GuestExit) return { kind: 'exit', message: err.message };
  if (err instanceof DeadlineExceeded) return { kind: 'trap', message: err.message };
  if (err instanceof WebAssembly.RuntimeError) return { kind: 'trap', message: `wasm trap: ${err.message}` };
  if (err instanceof Error) return { kind: 'trap', message: `${err.name}: ${err.message}` };
  return { kind: 'trap', message: String(err) };
}

function run(request: RunRequest): void {
  busy = true;
  let thrown: RunFailure | undefined;
  try {
    const root = warm ?? fresh();
    warm = undefined;
    const handler = root[data.handlerExport] ?? root.incomingHandler;
    if (!handler) throw new Error(`the component has no export ${data.handlerExport}`);
    const { request: incoming, responseOut } = host.begin(request);
    handler.handle(incoming, responseOut);
  } catch (err) {
    thrown = describe(err);
  }
  const failure = host.end(thrown);
  channel.post(failure ? { t: 'done', id: request.id, failure } : { t: 'done', id: request.id });
  busy = false;
  // Light the next instance while idle, so the next request does not wait for it.
  setImmediate(prewarm);
}

function prewarm(): void {
  if (busy || warm) return;
  try {
    warm = fresh();
  } catch {
    warm = undefined;
  }
}

function onMessage(message: ToWorker): void {
  if (message.t === 'request') {
    if (busy) {
      channel.post({ t: 'done', id: message.id, failure: { kind: 'trap', message: 'worker is busy' } });
      return;
    }
    run(message);
    return;
  }
  host.dispatch(message);
}

async function load(): Promise<void> {
  try {
    const url = `data:text/javascript;base64,${Buffer.from(data.bindings, 'utf8').toString('base64')}`;
    const bindings = (await import(url)) as { instantiate?: Instantiate };
    if (typeof bindings.instantiate !== 'function') throw new Error('the component bindings do not export instantiate()');
    instantiate = bindings.instantiate;
    warm = fresh();
  } catch (err) {
    channel.post({ t: 'load-failed', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  port.on('message', onMessage);
  channel.post({ t: 'ready' });
}

void load();
