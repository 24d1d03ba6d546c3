// Builds a JS or TS fetch handler into a wasi:http component: esbuild bundles it, componentize-js embeds it.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ModuleError } from '../../errors/index.js';
import { encodeCustomSection } from '../wasm/index.js';
import { checkHandlerSource, type EsbuildApi } from './check-handler.js';
import { HANDLER_ENTRY_SECTION, HANDLER_ENTRY_VERSION } from './component-protocol.js';
import { fetchEventEntry, HANDLER_PRELUDE } from './handler-entry.js';
import { handlerDeps, handlerWitText, handlerWorldWit } from './handler-wit.js';
import { reusableEntry } from './reusable-entry.js';

/** An import of wasi:filesystem left in the bundle (esbuild keeps `wasi:*` external). */
const FILESYSTEM_IMPORT = /["']wasi:filesystem\/[a-z-]+@[^"']*["']/;

/**
 * Everything of a build that is Lamplighter's rather than the handler's or the tools': the WIT,
 * both entries and their prelude. A cached build keyed by it is rebuilt when any of it changes.
 * (A function: only caches of builds need it, never a node.)
 */
export function buildRecipe(): string {
  return [handlerWitText(), HANDLER_PRELUDE, fetchEventEntry('<handler>', '<prelude>'), reusableEntry('<handler>', '<prelude>'), HANDLER_ENTRY_SECTION, HANDLER_ENTRY_VERSION].join('\n');
}

async function mkdirFor(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Options for {@link buildComponent}. */
export interface BuildComponentOptions {
  /** Minify the bundled JavaScript. @default false */
  minify?: boolean;
  /**
   * What the component is built for. `"request"`: the engine's own fetch event serves each
   * request, the fastest way when every request gets an instance restored as new. `"instance"`:
   * an entry that serves wasi:http itself, so that one instance answers request after request
   * (`isolation = "instance"`); each request costs more, as the entry's calls are interpreted.
   * @default "request"
   */
  isolation?: 'request' | 'instance';
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
    const reusable = options.isolation === 'instance';
    const preludePath = path.join(workDir, 'lamplighter-prelude.js');
    await writeFile(preludePath, HANDLER_PRELUDE);
    let bundle: string;
    try {
      const result = await esbuild.build({
        stdin: { contents: (reusable ? reusableEntry : fetchEventEntry)(absolute, preludePath), resolveDir: path.dirname(absolute), sourcefile: 'lamplighter-entry.js', loader: 'js' },
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
    const world = { reusable, readsFiles };
    const deps = handlerDeps(world);
    const witDir = path.join(workDir, 'wit');
    await writeFile(path.join(await mkdirFor(witDir), 'world.wit'), handlerWorldWit(world));
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
    // A component's sections may come in any order: the entry's is appended.
    return { component: reusable ? Buffer.concat([component, encodeCustomSection(HANDLER_ENTRY_SECTION, HANDLER_ENTRY_VERSION)]) : component };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
