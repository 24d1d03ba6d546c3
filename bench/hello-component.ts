// examples/hello-ts built into a component, once: the benches that serve the TypeScript hello share it.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildComponent } from '../src/runtime/component/index.js';
import { repoRoot } from '../src/testing/index.js';

/** The path of examples/hello-ts/handler.wasm, built first (10-20 s) when absent; git ignores it. */
export async function helloComponentFile(): Promise<string> {
  const wasm = path.join(repoRoot, 'examples', 'hello-ts', 'handler.wasm');
  if (!existsSync(wasm)) {
    console.error('Building examples/hello-ts/handler.ts into a component (10-20 s)...');
    const built = await buildComponent(path.join(repoRoot, 'examples', 'hello-ts', 'handler.ts'));
    await writeFile(wasm, built.component);
  }
  return wasm;
}
