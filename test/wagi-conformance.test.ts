// The shared Instance conformance suite, run against WAGI instances serving the C echo module.
import { readFile } from 'node:fs/promises';
import { after } from 'node:test';
import { parseManifest } from '../src/manifest/index.js';
import { compileWagiModule, createWagiFactory, SandboxPool } from '../src/runtime/wasm/index.js';
import { wagiApp, wagiFixture } from '../src/testing/index.js';
import { runInstanceConformance } from './instance-conformance.js';

const pool = new SandboxPool({ size: 2 });
after(() => pool.close());

runInstanceConformance({
  name: 'wagi',
  async createFactory() {
    const spec = parseManifest(wagiApp('echo', 'echo', 'echo.wasm', ['/...'])).functions[0]!;
    const compiled = await compileWagiModule(await readFile(wagiFixture('echo')), spec.limits.memory);
    return createWagiFactory(compiled, spec, { pool, log: () => {} });
  },
});
