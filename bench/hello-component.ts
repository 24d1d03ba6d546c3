// examples/hello-ts built into a component, once per version of its source: the benches that
// serve the TypeScript hello share it.
import { createHash } from 'node:crypto';
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildComponent } from '../src/runtime/component/index.js';
import { repoRoot } from '../src/testing/index.js';

/**
 * The path of the built hello, under the OS temp dir and named by a hash of handler.ts, so that
 * a changed handler is built again. The first call on a machine builds it (10-20 s).
 */
export async function helloComponentFile(): Promise<string> {
  const handler = path.join(repoRoot, 'examples', 'hello-ts', 'handler.ts');
  const hash = createHash('sha256').update(await readFile(handler)).digest('hex').slice(0, 24);
  const file = path.join(tmpdir(), 'lamplighter-bench', `hello-ts-${hash}.wasm`);
  const built = await access(file).then(
    () => true,
    () => false,
  );
  if (!built) {
    console.error('Building examples/hello-ts/handler.ts into a component (10-20 s)...');
    const { component } = await buildComponent(handler);
    await mkdir(path.dirname(file), { recursive: true });
    // Written aside and renamed, so a bench stopped mid-write never finds half a component.
    await writeFile(`${file}.${process.pid}.tmp`, component);
    await rename(`${file}.${process.pid}.tmp`, file);
  }
  return file;
}
