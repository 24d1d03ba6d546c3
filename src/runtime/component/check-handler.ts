// Refuses a handler source that registers no fetch handler, before the long componentize step.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ModuleError } from '../../errors/index.js';
import type { HandlerProbe } from './handler-probe-worker.js';

/** Extensions of the modules `lamplighter build` takes. */
const HANDLER_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.jsx', '.ts', '.mts', '.cts', '.tsx']);

/** What a handler source must do, for the messages below. */
const HOW_TO =
  "add `export default { async fetch(request, env) { return new Response('hello') } }`, or register a listener with `addEventListener('fetch', (event) => event.respondWith(new Response('hello')))`";

/** The part of esbuild's API the build uses (loaded lazily: it is a large module). */
export interface EsbuildApi {
  build(options: Record<string, unknown>): Promise<{ outputFiles?: Array<{ text: string }>; metafile?: { outputs: Record<string, { exports?: string[] }> } }>;
}

const PROBE_URL = new URL('./handler-probe-worker.js', import.meta.url);

/**
 * Runs the bundled module's top level on a worker thread, in an empty V8 context with stand-ins
 * for `addEventListener` and the `wasi:` imports, to see what it registers. The thread keeps
 * whatever the top level leaves behind (a rejected promise, a loop) away from the build. A top
 * level that needs the engine's web APIs throws there: undefined, and the static reading decides.
 */
function probe(code: string): Promise<HandlerProbe | undefined> {
  const worker = new Worker(PROBE_URL, { workerData: { code }, resourceLimits: { maxOldGenerationSizeMb: 256 } });
  return new Promise<HandlerProbe | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 10_000);
    const done = (result: HandlerProbe | undefined): void => {
      clearTimeout(timer);
      resolve(result);
    };
    worker.once('message', (result: HandlerProbe | null) => done(result ?? undefined));
    worker.once('error', () => done(undefined));
    worker.once('exit', () => done(undefined));
  }).finally(() => void worker.terminate());
}

/**
 * Checks that the module at `absolute` (named `shown` in messages) registers a fetch handler: a
 * default export with a `fetch` method, or a `fetch` event listener. Throws a ModuleError naming
 * the file and what to add. Bundling errors are left to the real build, which reports them.
 */
export async function checkHandlerSource(absolute: string, shown: string, esbuild: EsbuildApi): Promise<void> {
  const ext = path.extname(absolute).toLowerCase();
  if (!HANDLER_EXTENSIONS.has(ext)) {
    throw new ModuleError(`Cannot build ${shown}: it is not a JavaScript or TypeScript module (${ext || 'no extension'}), so it registers no fetch handler; write a .js or .ts module and ${HOW_TO}`);
  }
  const common = {
    entryPoints: [absolute],
    bundle: true,
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    conditions: ['worker', 'browser'],
    external: ['wasi:*'],
    write: false,
    logLevel: 'silent',
    outdir: 'out',
  };
  let exports: string[];
  let esmCode: string;
  try {
    const esm = await esbuild.build({ ...common, format: 'esm', metafile: true });
    exports = Object.values(esm.metafile?.outputs ?? {}).flatMap((o) => o.exports ?? []);
    esmCode = esm.outputFiles?.[0]?.text ?? '';
  } catch {
    // The real build reports the bundler's error.
    return;
  }
  // An IIFE exposes the module's exports to the probe (top-level await cannot be one).
  const iife = await esbuild.build({ ...common, format: 'iife', globalName: '__lamplighterHandler' }).catch(() => undefined);
  const code = iife?.outputFiles?.[0]?.text;
  const found = code === undefined ? undefined : await probe(code);
  if (found) {
    if (found.defaultFetch || found.listener) return;
    const has = found.defaultKind === 'none' ? 'no default export' : `a default export that is ${found.defaultKind === 'object' ? 'an object without a fetch method' : `a ${found.defaultKind}`}`;
    throw new ModuleError(`Cannot build ${shown}: it registers no fetch handler (it has ${has} and adds no 'fetch' event listener); ${HOW_TO}`);
  }
  // Its top level needs the engine: judge by what can be read without running it.
  const listens = /addEventListener\s*\(\s*(['"`])fetch\1/.test(esmCode);
  if (exports.includes('default') || listens) return;
  throw new ModuleError(`Cannot build ${shown}: it registers no fetch handler (it has no default export and adds no 'fetch' event listener); ${HOW_TO}`);
}
