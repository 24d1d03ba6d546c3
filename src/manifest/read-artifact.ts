// Reads a function's artifact from its app directory; a missing one is named with how to build it.
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { handlerSourceBeside } from '../config/index.js';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import type { FunctionSpec } from './manifest.js';

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** What to do about a missing artifact: build it from a source beside it, or from one of one's own. */
async function buildHint(appDir: string, source: string, runtime: FunctionSpec['runtime']): Promise<string> {
  const parsed = path.parse(source);
  const stem = path.join(parsed.dir, parsed.name);
  const beside = await handlerSourceBeside(appDir, source);
  if (beside !== undefined) return `build it with \`lamplighter build ${beside} -o ${source}\``;
  const clang = (c: string): string => `\`clang --target=wasm32-wasi -O2 -o ${source} ${c}\` (clang with wasi-libc; see the README)`;
  if (await exists(path.resolve(appDir, `${stem}.c`))) return `build it from ${stem}.c with ${clang(`${stem}.c`)}`;
  if (runtime === 'component') return `build it from a JS or TS fetch handler with \`lamplighter build handler.ts -o ${source}\`, or fix \`source\` in lamplighter.toml`;
  return `build a WASI command module there (from C: ${clang('handler.c')}), or fix \`source\` in lamplighter.toml`;
}

/**
 * The bytes of `fn`'s artifact (its `source`, relative to `appDir`). A missing file is
 * LL_MODULE_INVALID naming the path looked at and how to build it (`lamplighter build` for a
 * JS/TS handler beside it, clang for a C one).
 */
export async function readArtifact(appDir: string, fn: FunctionSpec): Promise<Buffer> {
  const source = fn.source ?? '';
  const file = path.resolve(appDir, source);
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      const hint = await buildHint(appDir, source, fn.runtime);
      throw new LamplighterError(ErrorCodes.MODULE_INVALID, `Cannot deploy function '${fn.name}': ${source} not found (looked for ${file}); ${hint}`, { cause: err });
    }
    throw new LamplighterError(ErrorCodes.MODULE_INVALID, `Cannot deploy function '${fn.name}': cannot read ${source}: ${code ?? String(err)}`, { cause: err });
  }
}
