// Reading and capping WebAssembly binaries at deploy time.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { binaryKind, capMemory, compileWagiModule, WASM_PAGE } from '../src/runtime/wasm/index.js';
import { wagiFixture } from '../src/testing/index.js';

describe('wasm binary', () => {
  test('wasm binary — tells modules, components and garbage apart', async () => {
    assert.equal(binaryKind(await readFile(wagiFixture('counter'))), 'module');
    assert.equal(binaryKind(Buffer.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0])), 'component');
    assert.equal(binaryKind(Buffer.from('hello')), 'unknown');
  });

  test('wasm binary — caps a memory with no maximum at the limit', async () => {
    const bytes = await readFile(wagiFixture('alloc'));
    const capped = capMemory(bytes, 8 * 1024 * 1024);
    assert.equal(capped.declared?.maximumPages, undefined);
    const module = new WebAssembly.Module(capped.bytes as Uint8Array<ArrayBuffer>);
    const memory = WebAssembly.Module.exports(module).find((e) => e.name === 'memory');
    assert.ok(memory);
    // The capped module still instantiates and its memory cannot grow past 8 MiB.
    const instance = new WebAssembly.Instance(module, { wasi_snapshot_preview1: new Proxy({}, { get: () => () => 0 }) });
    const mem = instance.exports.memory as WebAssembly.Memory;
    assert.throws(() => mem.grow((8 * 1024 * 1024) / WASM_PAGE));
  });

  test('wasm binary — refuses a module whose initial memory is over the limit', async () => {
    const bigmem = await readFile(wagiFixture('bigmem'));
    assert.throws(() => capMemory(bigmem, 64 * 1024 * 1024), /initial memory, over the limit/);
  });

  test('wasm binary — compileWagiModule gives the same key for the same bytes and limit', async () => {
    const bytes = await readFile(wagiFixture('counter'));
    const a = await compileWagiModule(bytes, 16 * 1024 * 1024);
    const b = await compileWagiModule(bytes, 16 * 1024 * 1024);
    const c = await compileWagiModule(bytes, 32 * 1024 * 1024);
    assert.equal(a.key, b.key);
    assert.notEqual(a.key, c.key);
  });
});
