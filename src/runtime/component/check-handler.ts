// Refuses a handler source that registers no fetch handler, before the long componentize step.
import path from 'node:path';
import vm from 'node:vm';
import { ModuleError } from '../../errors/index.js';

/** Extensions of the modules `lamplighter build` takes. */
const HANDLER_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.jsx', '.ts', '.mts', '.cts', '.tsx']);

/** What a handler source must do, for the messages below. */
const HOW_TO =
  "add `export default { async fetch(request, env) { return new Response('hello') } }`, or register a listener with `addEventListener('fetch', (event) => event.respondWith(new Response('hello')))`";

interface EsbuildApi {
  build(options: Record<string, unknown>): Promise<{ outputFiles?: Array<{ text: string }>; metafile?: { outputs: Record<string, { exports?: string[] }> } }>;
}

/** What running the module's top level showed; undefined when it could not run outside the engine. */
interface Probe {
  defaultFetch: boolean;
  defaultKind: string;
  listener: boolean;
}

/**
 * Runs the bundled module's top level in an empty V8 context with stand-ins for
 * `addEventListener` and the `wasi:` imports, to see what it registers. A module whose top level
 * needs the engine's web APIs throws here: then only the static reading below decides.
 */
function probe(code: string): Probe | undefined {
  let listener = false;
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
    const defaultFetch = typeof value === 'object' && value !== null && typeof (value as { fetch?: unknown }).fetch === 'function';
    return { defaultFetch, defaultKind: value === undefined ? 'none' : value === null ? 'null' : typeof value, listener };
  } catch {
    return undefined;
  }
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
  let code: string;
  try {
    const esm = await esbuild.build({ ...common, format: 'esm', metafile: true });
    exports = Object.values(esm.metafile?.outputs ?? {}).flatMap((o) => o.exports ?? []);
    const iife = await esbuild.build({ ...common, format: 'iife', globalName: '__lamplighterHandler' });
    code = iife.outputFiles?.[0]?.text ?? '';
  } catch {
    return;
  }
  const found = probe(code);
  if (found) {
    if (found.defaultFetch || found.listener) return;
    const has = found.defaultKind === 'none' ? 'no default export' : `a default export that is ${found.defaultKind === 'object' ? 'an object without a fetch method' : `a ${found.defaultKind}`}`;
    throw new ModuleError(`Cannot build ${shown}: it registers no fetch handler (it has ${has} and adds no 'fetch' event listener); ${HOW_TO}`);
  }
  // Its top level needs the engine: judge by what can be read without running it.
  const listens = /addEventListener\s*\(\s*(['"`])fetch\1/.test(code);
  if (exports.includes('default') || listens) return;
  throw new ModuleError(`Cannot build ${shown}: it registers no fetch handler (it has no default export and adds no 'fetch' event listener); ${HOW_TO}`);
}
