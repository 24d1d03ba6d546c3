// Which JS/TS handler beside a component's `source` `lamplighter build` turns into it: one list, one order.
import { access } from 'node:fs/promises';
import path from 'node:path';

/** Handler sources `lamplighter build` turns into a component, in the order they are looked for. */
export const HANDLER_SOURCE_EXTENSIONS: readonly string[] = ['.ts', '.js', '.mjs', '.mts'];

/**
 * The handler source beside `source` (`api/handler.wasm` → `api/handler.ts`), relative to
 * `appDir` as `source` is, taking the first of {@link HANDLER_SOURCE_EXTENSIONS} that exists;
 * undefined when there is none.
 */
export async function handlerSourceBeside(appDir: string, source: string): Promise<string | undefined> {
  const parsed = path.parse(source);
  const stem = path.join(parsed.dir, parsed.name);
  for (const ext of HANDLER_SOURCE_EXTENSIONS) {
    const candidate = stem + ext;
    if (await access(path.resolve(appDir, candidate)).then(() => true, () => false)) return candidate;
  }
  return undefined;
}
