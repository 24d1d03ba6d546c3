// Component runtime at deploy time: what prepareComponent rejects and why, and real traps at request time.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LamplighterError, ManifestError, ModuleError } from '../src/errors/index.js';
import type { Instance, InstanceFactory } from '../src/instance/index.js';
import { createComponentFactory, prepareComponent } from '../src/runtime/component/index.js';
import { buildFixtureComponent, buildTrappingComponent, COMPONENT_FIXTURES, componentSpec, memoryLog } from './component-helpers.js';
import { makeInvocationRequest, withTimeout } from './instance-conformance.js';

const WAGI_ECHO = path.join(COMPONENT_FIXTURES, '..', 'wagi', 'echo.wasm');

function rejectsWith(kind: typeof ModuleError | typeof ManifestError, pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof kind, `expected ${kind.name}, got ${String(err)}`);
    assert.match((err as Error).message, pattern);
    assert.equal((err as LamplighterError).status, 400);
    return true;
  };
}

describe('component deploy — rejections', () => {
  test('prepareComponent — rejects a core WebAssembly module, pointing at runtime = "wagi"', async () => {
    const bytes = new Uint8Array(await readFile(WAGI_ECHO));
    await assert.rejects(prepareComponent(bytes, componentSpec()), rejectsWith(ModuleError, /core WebAssembly module, not a component.*wagi/));
  });

  test('prepareComponent — rejects bytes that are not WebAssembly', async () => {
    await assert.rejects(
      prepareComponent(new TextEncoder().encode('#!/bin/sh\necho hello\n'), componentSpec()),
      rejectsWith(ModuleError, /not a WebAssembly component/),
    );
  });

  test('prepareComponent — rejects a truncated component as malformed', async () => {
    const whole = await buildTrappingComponent('worlds.wit', 'trap');
    await assert.rejects(prepareComponent(whole.subarray(0, Math.floor(whole.length / 2)), componentSpec()), rejectsWith(ModuleError, /malformed/));
  });

  test('prepareComponent — rejects a component without wasi:http/incoming-handler, naming what it exports', async () => {
    const bytes = await buildTrappingComponent('worlds.wit', 'no-handler');
    await assert.rejects(
      prepareComponent(bytes, componentSpec()),
      rejectsWith(ModuleError, /does not export wasi:http\/incoming-handler@0\.2\.x \(it exports acme:kv\/store@1\.0\.0\)/),
    );
  });

  test('prepareComponent — rejects imports the host does not provide and lists every missing name', async () => {
    const bytes = await buildTrappingComponent('worlds.wit', 'unknown-imports');
    await assert.rejects(prepareComponent(bytes, componentSpec()), (err: unknown) => {
      assert.ok(err instanceof ModuleError);
      assert.match(err.message, /imports interfaces the host does not provide: /);
      assert.match(err.message, /acme:kv\/store@1\.0\.0/);
      assert.match(err.message, /wasi:sockets\/tcp@0\.2\.3/);
      assert.deepEqual((err.detail?.missing as string[]).sort(), ['acme:kv/store@1.0.0', 'wasi:sockets/tcp@0.2.3']);
      return true;
    });
  });

  test('prepareComponent — rejects a malformed allowed_outbound_hosts entry with its field path', async () => {
    const bytes = await buildTrappingComponent('worlds.wit', 'trap');
    await assert.rejects(
      prepareComponent(bytes, componentSpec({ allowedOutboundHosts: ['ftp://example.com/path'] })),
      rejectsWith(ManifestError, /function\[echo\]\.allowed_outbound_hosts entry 'ftp:\/\/example\.com\/path'/),
    );
  });

  test('prepareComponent — rejects a component whose initial memory is over limits.memory', { timeout: 120_000 }, async () => {
    const bytes = await buildFixtureComponent('echo.ts');
    await assert.rejects(prepareComponent(bytes, componentSpec({ memory: '4MiB' })), rejectsWith(ModuleError, /over limits\.memory of 4194304 bytes/));
  });

  test('createComponentFactory — runs the spec checks again for a cached prepared component', async () => {
    const prepared = await prepareComponent(await buildTrappingComponent('worlds.wit', 'trap'), componentSpec());
    assert.throws(
      () => createComponentFactory(prepared, componentSpec({ allowedOutboundHosts: ['localhost'] }), { log: () => undefined }),
      rejectsWith(ManifestError, /allowed_outbound_hosts entry 'localhost'/),
    );
  });

  test('prepareComponent — returns serialisable files: the bindings entry and compiled-ready core modules', async () => {
    const prepared = await prepareComponent(await buildTrappingComponent('worlds.wit', 'trap'), componentSpec());
    assert.equal(prepared.entry, 'component.js');
    assert.ok(prepared.files[prepared.entry] instanceof Uint8Array);
    assert.ok(Object.keys(prepared.files).some((f) => f.endsWith('.wasm')));
    assert.ok(!Object.keys(prepared.files).some((f) => f.endsWith('.d.ts')));
    assert.deepEqual(prepared.exports, ['wasi:http/incoming-handler@0.2.3']);
    assert.deepEqual(prepared.imports, ['wasi:http/types@0.2.3']);
    const copy = structuredClone(prepared);
    assert.deepEqual(Object.keys(copy.files).sort(), Object.keys(prepared.files).sort());
  });
});

describe('component deploy — traps', () => {
  const opened: Array<{ factory: InstanceFactory; instance: Instance }> = [];
  after(async () => {
    for (const { factory, instance } of opened) {
      await instance.stop();
      await factory.close();
    }
  });

  test('component instance — a trapping handler answers 500 (HANDLER_TRAP), the trap text goes to the log, the instance serves on', async () => {
    const log = memoryLog();
    const prepared = await prepareComponent(await buildTrappingComponent('worlds.wit', 'trap'), componentSpec({ name: 'trapper' }));
    const factory = createComponentFactory(prepared, componentSpec({ name: 'trapper' }), { log: log.sink });
    const instance = factory.create('trap-1');
    opened.push({ factory, instance });
    await withTimeout(instance.ready, 20_000, 'ready');
    for (let i = 0; i < 2; i++) {
      const request = makeInvocationRequest({ url: '/anything' });
      await assert.rejects(withTimeout(instance.handle(request), 20_000, 'trap'), (err: unknown) => {
        assert.ok(err instanceof LamplighterError);
        assert.equal(err.code, 'LL_HANDLER_TRAP');
        assert.equal(err.status, 500);
        assert.match(err.message, /Function 'trapper' trapped: wasm trap: unreachable/);
        return true;
      });
      await sleep(20);
      assert.match(log.text(), new RegExp(`trap: wasm trap: unreachable.*\\(request ${request.id}\\)`));
    }
    assert.equal(instance.state, 'ready');
  });
});
