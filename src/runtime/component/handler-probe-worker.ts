// Worker thread that runs a bundled handler's top level in an empty V8 context and reports what it registers.
import { parentPort, workerData } from 'node:worker_threads';
import vm from 'node:vm';

/** What running a handler module's top level showed. */
export interface HandlerProbe {
  /** The default export is an object with a `fetch` method. */
  defaultFetch: boolean;
  /** `typeof` the default export, or `none`/`null`. */
  defaultKind: string;
  /** It called addEventListener('fetch', ...). */
  listener: boolean;
}

const { code } = workerData as { code: string };
let listener = false;
// Stand-ins for the engine: whatever else the top level needs makes the probe inconclusive.
const context = vm.createContext({
  addEventListener: (type: unknown) => {
    if (type === 'fetch') listener = true;
  },
  require: () => ({}),
  console: { log() {}, error() {}, warn() {}, info() {}, debug() {} },
});
try {
  const namespace = vm.runInContext(`${code}\n;__lamplighterHandler`, context, { timeout: 2000 }) as { default?: unknown } | undefined;
  const value = namespace?.default;
  const result: HandlerProbe = {
    defaultFetch: typeof value === 'object' && value !== null && typeof (value as { fetch?: unknown }).fetch === 'function',
    defaultKind: value === undefined ? 'none' : value === null ? 'null' : typeof value,
    listener,
  };
  parentPort!.postMessage(result);
} catch {
  parentPort!.postMessage(null);
}
