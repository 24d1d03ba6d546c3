// The direct call path for synchronous host imports in jco's bindings: the rewrite, its refusals, and serving through it.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { hookBindings, BINDINGS_STATE_EXPORT } from '../src/runtime/component/bindings-hooks.js';
import { leanSyncImports } from '../src/runtime/component/bindings-lean-imports.js';
import { createComponentFactory, prepareComponent } from '../src/runtime/component/index.js';
import { buildReusableComponent, componentSpec, memoryLog } from './component-helpers.js';
import { makeInvocationRequest, readBody } from './instance-conformance.js';

/** The instantiation module jco makes of the stand-in component. */
let bindings = '';
let hostImports = 0;

before(async () => {
  const prepared = await prepareComponent(await buildReusableComponent(), componentSpec());
  bindings = Buffer.from(prepared.files[prepared.entry]!).toString('utf8');
  hostImports = bindings.match(/const hostProvided = true;/g)?.length ?? 0;
});

/** The source with the `nth` match of `pattern` (0-based) replaced. */
function alterNth(source: string, pattern: RegExp, nth: number, replacement: string): string {
  let seen = -1;
  const altered = source.replace(new RegExp(pattern.source, 'g'), (whole) => (++seen === nth ? replacement : whole));
  assert.ok(seen >= nth, `the bindings have no match ${nth} of ${pattern}`);
  return altered;
}

function assertUnchanged(source: string, why: RegExp): void {
  const lean = leanSyncImports(source);
  assert.equal(lean.imports, 0);
  assert.equal(lean.source, source);
  assert.match(lean.refused ?? '', why);
}

describe('component lean imports — the rewrite', () => {
  test('leanSyncImports — gives every host import of real jco bindings a direct call', async () => {
    assert.ok(hostImports > 0, 'the stand-in component imports host functions');
    const lean = leanSyncImports(bindings);
    assert.equal(lean.refused, undefined);
    assert.equal(lean.imports, hostImports);
    assert.doesNotMatch(lean.source, /const hostProvided = true;/);
    assert.doesNotMatch(lean.source, /: _lowerImportBackwardsCompat\.bind\(/);
    // The export the guest is called through keeps its task.
    assert.match(lean.source, /const hostProvided = false;/);
    // Still a module that loads.
    const module = (await import(`data:text/javascript,${encodeURIComponent(lean.source)}`)) as Record<string, unknown>;
    assert.equal(typeof module.instantiate, 'function');
  });

  test('hookBindings — applies the rewrite beside the state hook', () => {
    const hooked = hookBindings(bindings);
    assert.equal(hooked.hooked, true);
    assert.equal(hooked.leanImports, hostImports);
    assert.match(hooked.source, new RegExp(`export function ${BINDINGS_STATE_EXPORT}\\(`));
  });
});

describe('component lean imports — refusals leave the bindings as they are', () => {
  test('leanSyncImports — refuses when one import opens its host task differently', () => {
    assertUnchanged(alterNth(bindings, /errHandling: 'none',\n\s*callingWasmExport: false,/, 0, "errHandling: 'throw',\ncallingWasmExport: false,"), /prologue/);
  });

  test('leanSyncImports — refuses when one import is lowered as async', () => {
    assertUnchanged(alterNth(bindings, /funcTypeIsAsync: false,/, 1, 'funcTypeIsAsync: true,'), /lowered as async/);
  });

  test('leanSyncImports — refuses when one import makes its call another way', () => {
    assertUnchanged(alterNth(bindings, /taskID: task\.id\(\),\n(\s*)fn: \(\) =>/, 0, 'taskID: task.id(), extra: 1,\nfn: () =>'), /call/);
  });

  test('leanSyncImports — refuses when an import returns other than it resolves', () => {
    const pattern = /task\.resolve\(\[([^\n\]]*)\]\);\n(\s*)task\.exit\(\);\n(\s*)return \1;/;
    const altered = bindings.replace(pattern, (_whole, value: string, a: string, b: string) => `task.resolve([${value}]);\n${a}task.exit();\n${b}return 0;`);
    assert.notEqual(altered, bindings, 'the bindings have an import that returns a value');
    assertUnchanged(altered, /returns other than it resolves/);
  });

  test('leanSyncImports — refuses when a host import has no lowering wrapper of the expected shape', () => {
    assertUnchanged(alterNth(bindings, /\)\) : _lowerImportBackwardsCompat\.bind\(/, 0, ')) : _lowerImportBackwardsCompat.call(null, '), /lowering wrapper/);
  });

  test('leanSyncImports — refuses when jco was told an import is async', () => {
    assertUnchanged(`${bindings}\n_trampoline0.manuallyAsync = true;\n`, /async/);
  });

  test('hookBindings — keeps the state hook when the rewrite refuses', () => {
    const hooked = hookBindings(alterNth(bindings, /funcTypeIsAsync: false,/, 1, 'funcTypeIsAsync: true,'));
    assert.equal(hooked.hooked, true);
    assert.equal(hooked.leanImports, 0);
    assert.match(hooked.source, /: _lowerImportBackwardsCompat\.bind\(/);
  });
});

describe('component lean imports — serving', () => {
  test('a factory whose bindings the rewrite refuses says so in the function log, and still serves', async () => {
    const spec = componentSpec({ name: 'slow' });
    const prepared = await prepareComponent(await buildReusableComponent(), spec);
    const entry = new TextDecoder().decode(prepared.files[prepared.entry]);
    const altered = { ...prepared, files: { ...prepared.files, [prepared.entry]: new TextEncoder().encode(alterNth(entry, /const hostProvided = true;/, 0, 'const hostProvided = true; /* a shape the rewrite does not know */')) } };
    const log = memoryLog();
    const factory = createComponentFactory(altered, spec, { log: log.sink, maxWorkers: 1 });
    const instance = factory.create('slow-1');
    try {
      await instance.ready;
      assert.equal(factory.leanImports, 0);
      assert.match(log.text(), /component bindings: host imports keep jco's task bookkeeping \(.+\); each request costs more/);
      const response = await instance.handle(makeInvocationRequest({ url: '/count' }));
      assert.equal((await readBody(response)).toString('utf8'), '1');
    } finally {
      await instance.stop();
      await factory.close();
    }
  });


  test('a component served through the lean imports — answers, and its instance is restored as new each time', async () => {
    const spec = componentSpec({ name: 'lean' });
    const factory = createComponentFactory(await prepareComponent(await buildReusableComponent(), spec), spec, { log: () => undefined, maxWorkers: 1 });
    const instance = factory.create('lean-1');
    try {
      await instance.ready;
      const bodies: string[] = [];
      for (let i = 0; i < 20; i++) {
        const response = await instance.handle(makeInvocationRequest({ url: `/count?i=${i}` }));
        assert.equal(response.status, 200);
        bodies.push((await readBody(response)).toString('utf8'));
      }
      assert.ok(factory.leanImports > 0, 'the bindings call the host directly');
      // The stand-in answers with the number of requests its instance has served: 1, restored each time.
      assert.deepEqual(bodies, Array.from({ length: 20 }, () => '1'));
    } finally {
      await instance.stop();
      await factory.close();
    }
  });
});
