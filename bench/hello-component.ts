// examples/hello-ts built into a component, once per version of its source and tools: the
// benches that serve the TypeScript hello share it.
import path from 'node:path';
import { repoRoot } from '../src/testing/index.js';
import { buildCachedComponent } from '../test/component-helpers.js';

/**
 * The path of the hello built for `isolation` (`lamplighter build`, or with `--isolation
 * instance`); built first, 10-20 s, when its source or the tools changed.
 */
export async function helloComponentFile(isolation: 'request' | 'instance' = 'request'): Promise<string> {
  return (await buildCachedComponent(path.join(repoRoot, 'examples', 'hello-ts', 'handler.ts'), isolation)).file;
}
