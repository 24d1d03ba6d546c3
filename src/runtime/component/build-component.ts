// Builds a JS or TS fetch handler into a wasi:http component: esbuild bundles it, componentize-js embeds it.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ModuleError } from '../../errors/index.js';
import { checkHandlerSource, type EsbuildApi } from './check-handler.js';
import { NO_RESPONSE_HEADER } from './component-protocol.js';
import { CLOCKS_WIT, ENGINE_FILESYSTEM_VERSION, FILESYSTEM_WIT, IO_WIT } from './filesystem-wit.js';

/** The wasi:http version the bundled JS engine serves; the world's export must match it. */
export const ENGINE_HTTP_VERSION = '0.2.10';
/** The wasi:cli version the bundled JS engine uses; handlers import environment at this version. */
export const ENGINE_CLI_VERSION = '0.2.12';

const handlerWorld = (extraImports: string): string => `package lamplighter:handler;

world handler {
  import wasi:cli/environment@${ENGINE_CLI_VERSION};
${extraImports}  export wasi:http/incoming-handler@${ENGINE_HTTP_VERSION};
}
`;

/** The world a JS handler is built against: it serves HTTP and may read its environment. */
export const HANDLER_WORLD_WIT = handlerWorld('');

/**
 * The world of a handler that imports wasi:filesystem (at {@link ENGINE_FILESYSTEM_VERSION}) to
 * read its function's files; the WIT it needs beside the world's is {@link HANDLER_FILES_DEPS_WIT}.
 */
export const HANDLER_FILES_WORLD_WIT = handlerWorld(`  import wasi:filesystem/preopens@${ENGINE_FILESYSTEM_VERSION};\n  import wasi:filesystem/types@${ENGINE_FILESYSTEM_VERSION};\n`);

/** The WASI packages the files world names, one text (for cache keys). */
export const HANDLER_FILES_DEPS_WIT = [FILESYSTEM_WIT, IO_WIT, CLOCKS_WIT].join('\n');

/** An import of wasi:filesystem left in the bundle (esbuild keeps `wasi:*` external). */
const FILESYSTEM_IMPORT = /["']wasi:filesystem\/[a-z-]+@[^"']*["']/;

// Only the parts of the WASI packages that the world above names; the engine brings the rest.
const HTTP_WIT = `package wasi:http@${ENGINE_HTTP_VERSION};

interface types {
  resource incoming-request;
  resource response-outparam;
}

interface incoming-handler {
  use types.{incoming-request, response-outparam};
  handle: func(request: incoming-request, response-out: response-outparam);
}
`;

const CLI_WIT = `package wasi:cli@${ENGINE_CLI_VERSION};

interface environment {
  get-environment: func() -> list<tuple<string, string>>;
  get-arguments: func() -> list<string>;
  initial-cwd: func() -> option<string>;
}
`;

/**
 * A module imported before the handler: it keeps the handler's `fetch` listeners to itself, so
 * that the entry's single listener decides what happens when none of them responds.
 */
const LISTENERS_SOURCE = `export const listeners = [];
const engineAddEventListener = globalThis.addEventListener;
globalThis.addEventListener = function addEventListener(type, listener, options) {
  if (type === 'fetch') {
    if (listener) listeners.push(listener);
    return;
  }
  return engineAddEventListener.call(globalThis, type, listener, options);
};
export function listen(listener) {
  engineAddEventListener.call(globalThis, 'fetch', listener);
}
`;

/**
 * The entry the bundle starts from. A module with `export default { fetch(request, env) }` is
 * called with the manifest's environment; otherwise the fetch listeners the module registered
 * are called in order until one responds. No response at all (nothing registered, no listener
 * responding, or something other than a Response) becomes an empty 502 carrying
 * {@link NO_RESPONSE_HEADER}, which the host turns into its JSON error.
 */
function wrapperSource(handlerPath: string, listenersPath: string): string {
  return `import { listeners, listen } from ${JSON.stringify(listenersPath)};
import * as handlerModule from ${JSON.stringify(handlerPath)};
import { getEnvironment } from 'wasi:cli/environment@${ENGINE_CLI_VERSION}';
const handler = handlerModule.default;
const noResponse = (why) => new Response(null, { status: 502, headers: { ${JSON.stringify(NO_RESPONSE_HEADER)}: why } });
const checked = (value, source) => value instanceof Response ? value : noResponse(source + ' gave ' + (value === null ? 'null' : typeof value) + ', not a Response');
listen((event) => {
  if (handler && typeof handler.fetch === 'function') {
    const env = Object.fromEntries(getEnvironment());
    const ctx = { waitUntil: (promise) => event.waitUntil(promise) };
    event.respondWith(Promise.resolve().then(() => handler.fetch(event.request, env, ctx)).then((r) => checked(r, 'fetch()')));
    return;
  }
  let responded = false;
  const respondWith = (r) => {
    responded = true;
    event.respondWith(Promise.resolve(r).then((value) => checked(value, 'respondWith()')));
  };
  const proxy = new Proxy(event, {
    get(target, key) {
      if (key === 'respondWith') return respondWith;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  for (const listener of listeners) {
    if (typeof listener === 'function') listener.call(globalThis, proxy);
    else listener.handleEvent(proxy);
    if (responded) return;
  }
  event.respondWith(noResponse(listeners.length === 0 ? 'no fetch handler is registered' : 'no fetch listener called respondWith()'));
});
`;
}

async function mkdirFor(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Options for {@link buildComponent}. */
export interface BuildComponentOptions {
  /** Minify the bundled JavaScript. @default false */
  minify?: boolean;
}

/** What {@link buildComponent} produced. */
export interface BuiltComponent {
  /** The component binary. */
  component: Uint8Array;
}

interface ComponentizeApi {
  componentize(options: { sourcePath: string; witPath: string; worldName: string }): Promise<{ component: Uint8Array }>;
}

/**
 * Builds the handler module at `entryPath` (JS or TS; TS types are stripped, imports bundled) into
 * a component exporting wasi:http/incoming-handler. Throws a ModuleError when bundling or
 * componentizing fails, with the tool's message.
 */
export async function buildComponent(entryPath: string, options: BuildComponentOptions = {}): Promise<BuiltComponent> {
  const absolute = path.resolve(entryPath);
  const workDir = await mkdtemp(path.join(tmpdir(), 'lamplighter-build-'));
  try {
    const esbuild = (await import('esbuild')) as unknown as EsbuildApi;
    // Seconds here spare a minute of componentize for a source that could never answer.
    await checkHandlerSource(absolute, entryPath, esbuild);
    const listenersPath = path.join(workDir, 'lamplighter-listeners.js');
    await writeFile(listenersPath, LISTENERS_SOURCE);
    let bundle: string;
    try {
      const result = await esbuild.build({
        stdin: { contents: wrapperSource(absolute, listenersPath), resolveDir: path.dirname(absolute), sourcefile: 'lamplighter-entry.js', loader: 'js' },
        bundle: true,
        format: 'esm',
        platform: 'neutral',
        target: 'es2022',
        mainFields: ['module', 'main'],
        conditions: ['worker', 'browser'],
        external: ['wasi:*'],
        minify: options.minify ?? false,
        write: false,
        logLevel: 'silent',
      });
      bundle = result.outputFiles?.[0]?.text ?? '';
    } catch (err) {
      throw new ModuleError(`Cannot build ${entryPath}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }

    // Only a handler that reads files imports wasi:filesystem: the others are built as before.
    const readsFiles = FILESYSTEM_IMPORT.test(bundle);
    const deps: Record<string, string> = { http: HTTP_WIT, cli: CLI_WIT, ...(readsFiles ? { filesystem: FILESYSTEM_WIT, io: IO_WIT, clocks: CLOCKS_WIT } : {}) };
    const witDir = path.join(workDir, 'wit');
    await writeFile(path.join(await mkdirFor(witDir), 'world.wit'), readsFiles ? HANDLER_FILES_WORLD_WIT : HANDLER_WORLD_WIT);
    for (const [name, wit] of Object.entries(deps)) await writeFile(path.join(await mkdirFor(path.join(witDir, 'deps', name)), `${name}.wit`), wit);
    const sourcePath = path.join(workDir, 'handler.js');
    await writeFile(sourcePath, bundle);

    const { componentize } = (await import('@bytecodealliance/componentize-js')) as unknown as ComponentizeApi;
    let component: Uint8Array;
    try {
      ({ component } = await componentize({ sourcePath, witPath: witDir, worldName: 'handler' }));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new ModuleError(`Cannot build ${entryPath}: ${message.trim()}`, { cause: err });
    }
    return { component };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
