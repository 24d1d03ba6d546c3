// Restoring a used component instance: the core-module rewrite, the code scan, the snapshot, the bindings hook.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BINDINGS_STATE_EXPORT, hookBindings, type BindingsState } from '../src/runtime/component/bindings-hooks.js';
import { scanCode } from '../src/runtime/component/core-code-scan.js';
import { coreExportNames, coreStateFacts, exposeCoreState, STATE_EXPORT_PREFIX } from '../src/runtime/component/core-state-exports.js';
import { InstanceSnapshot, RESTORE_BLOCK, UnrestorableInstance } from '../src/runtime/component/instance-snapshot.js';

interface Jco {
  parse(wat: string): Promise<Uint8Array>;
}

async function wat(source: string): Promise<Uint8Array> {
  const jco = (await import('@bytecodealliance/jco')) as unknown as Jco;
  return jco.parse(source);
}

/** A module with state of every kind, and code using block, br_table, SIMD and bulk memory. */
const STATEFUL = `(module
  (memory (export "memory") 4)
  (global $g (mut i32) (i32.const 7))
  (global $k i32 (i32.const 3))
  (global $h (mut i64) (i64.const 9))
  (table $t 2 4 funcref)
  (func $f)
  (elem (i32.const 0) $f)
  (data (i32.const 1024) "first state")
  (func (export "poke") (param $addr i32) (param $v i32)
    (i32.store (local.get $addr) (local.get $v))
    (global.set $g (local.get $v))
    (global.set $h (i64.extend_i32_u (local.get $v))))
  (func (export "grow") (result i32) (memory.grow (i32.const 1)))
  (func (export "g") (result i32) (global.get $g))
  (func (export "h") (result i64) (global.get $h))
  (func (export "mix") (param i32) (result i32)
    (block (block (br_table 0 1 (local.get 0))))
    (v128.store offset=16 (i32.const 0) (i8x16.splat (local.get 0)))
    (memory.fill (i32.const 0) (i32.const 0) (i32.const 4))
    (call_indirect (i32.const 0))
    (i32.const 1)))`;

const T_FLAG = 1 << 30;

interface Exports {
  memory: WebAssembly.Memory;
  poke(addr: number, value: number): void;
  grow(): number;
  g(): number;
  h(): bigint;
  [name: string]: unknown;
}

function fakeBindings(): { state: BindingsState; table: number[] & { _createdReps: Set<number> }; capture: Map<number, unknown>; borrows: unknown[]; symbol: symbol } {
  const table = Object.assign([T_FLAG, 0], { _createdReps: new Set<number>() });
  const capture = new Map<number, unknown>();
  const borrows: unknown[] = [];
  const symbol = Symbol('handle');
  const state: BindingsState = {
    handleTables: [table],
    captureTables: [capture],
    borrows: () => borrows,
    tasks: () => undefined,
    currentTaskIds: () => undefined,
    handleSymbol: () => symbol,
  };
  return { state, table, capture, borrows, symbol };
}

async function instantiate(source: string): Promise<{ module: WebAssembly.Module; instance: WebAssembly.Instance; exports: Exports }> {
  const module = await WebAssembly.compile(exposeCoreState(await wat(source)) as Uint8Array<ArrayBuffer>);
  const instance = new WebAssembly.Instance(module, {});
  return { module, instance, exports: instance.exports as unknown as Exports };
}

describe('component snapshot — the core-module rewrite', () => {
  test('exposeCoreState — exports every mutable global, table and memory the module defines, and nothing else', async () => {
    const bytes = exposeCoreState(await wat(STATEFUL));
    const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    const added = WebAssembly.Module.exports(module).filter((e) => e.name.startsWith(STATE_EXPORT_PREFIX));
    assert.deepEqual(
      added.map((e) => `${e.name} ${e.kind}`),
      [`${STATE_EXPORT_PREFIX}global:0 global`, `${STATE_EXPORT_PREFIX}global:2 global`, `${STATE_EXPORT_PREFIX}table:0 table`, `${STATE_EXPORT_PREFIX}memory:0 memory`],
    );
    assert.deepEqual(coreStateFacts(module), { writesTables: false });
    assert.ok(coreExportNames(bytes).includes('poke'));
    const exports = new WebAssembly.Instance(module, {}).exports as unknown as Exports;
    exports.poke(0, 5);
    assert.equal(exports.g(), 5);
    assert.equal((exports[`${STATE_EXPORT_PREFIX}global:0`] as WebAssembly.Global).value, 5);
  });

  test('exposeCoreState — a module already exposed (as the cache keeps it) is returned as it is', async () => {
    const once = exposeCoreState(await wat(STATEFUL));
    const twice = exposeCoreState(once);
    assert.equal(twice, once, 'not rewritten again');
    // Otherwise the second pass would export every entity twice, and the module would not compile.
    await WebAssembly.compile(twice as Uint8Array<ArrayBuffer>);
  });

  test('exposeCoreState — a facts section the author put in is not trusted when the component is prepared', async () => {
    // The author's module claims to be exposed already, with a facts section of its own.
    const claimed = await wat(STATEFUL.replace('(module', '(module\n  (@custom "lamplighter:state" "{\\"writesTables\\":false}")'));
    const names = (bytes: Uint8Array): string[] => WebAssembly.Module.exports(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>)).map((e) => e.name).filter((n) => n.startsWith(STATE_EXPORT_PREFIX));
    assert.deepEqual(names(exposeCoreState(claimed)), [], 'taken at its word when not fresh (as a cached module is)');
    const fresh = exposeCoreState(claimed, { fresh: true });
    assert.equal(names(fresh).length, 4, 'prepared afresh: every entity exported');
    assert.equal(WebAssembly.Module.customSections(new WebAssembly.Module(fresh as Uint8Array<ArrayBuffer>), 'lamplighter:state').length, 1, 'one facts section, ours');
  });

  test('exposeCoreState — a module without an export section gains one in the right place', async () => {
    const module = await WebAssembly.compile(exposeCoreState(await wat('(module (global (mut i32) (i32.const 1)) (func))')) as Uint8Array<ArrayBuffer>);
    assert.deepEqual(WebAssembly.Module.exports(module).map((e) => e.name), [`${STATE_EXPORT_PREFIX}global:0`]);
  });

  test('scanCode — finds table.set, table.grow and table.fill, and reads SIMD, bulk memory and br_table as harmless', async () => {
    assert.equal(scanCode(await wat(STATEFUL)).writesTables, false);
    for (const op of ['(table.set (i32.const 0) (ref.null func))', '(drop (table.grow (ref.null func) (i32.const 1)))', '(table.fill (i32.const 0) (ref.null func) (i32.const 1))']) {
      const scan = scanCode(await wat(`(module (table 1 2 funcref) (func ${op}))`));
      assert.equal(scan.writesTables, true, op);
      assert.match(scan.reason ?? '', /function 0 writes a table/);
    }
  });
});

describe('component snapshot — restore', () => {
  test('InstanceSnapshot — puts back memory (blocks of data and blocks of zeros), globals and handle tables, copying only the blocks that changed', async () => {
    const core = await instantiate(STATEFUL);
    const bindings = fakeBindings();
    const snapshot = new InstanceSnapshot([core], bindings.state);
    const pristine = new Uint8Array(core.exports.memory.buffer).slice();
    // Only the first block holds data; blocks of zeros are not kept.
    assert.equal(snapshot.keptBytes, RESTORE_BLOCK);

    core.exports.poke(8, 0x1234);
    core.exports.poke(2 * RESTORE_BLOCK + 100, 42);
    // A handle the guest left open, and a host object that remembers it.
    const host = { [bindings.symbol]: 1 } as Record<symbol, unknown>;
    bindings.table.push(0, 5 | T_FLAG);
    bindings.table._createdReps.add(5);
    bindings.capture.set(5, host);

    const outcome = snapshot.restore();
    assert.deepEqual(outcome, { restored: true, dirtyBlocks: 2, totalBlocks: (4 * 65_536) / RESTORE_BLOCK, droppedHandles: 1 });
    assert.deepEqual(new Uint8Array(core.exports.memory.buffer), pristine);
    assert.equal(core.exports.g(), 7);
    assert.equal(core.exports.h(), 9n);
    assert.deepEqual([...bindings.table], [T_FLAG, 0]);
    assert.equal(bindings.table._createdReps.size, 0);
    assert.equal(bindings.capture.size, 0);
    assert.equal(host[bindings.symbol], undefined);
    // Nothing changed since: nothing to copy.
    assert.deepEqual(snapshot.restore(), { restored: true, dirtyBlocks: 0, totalBlocks: (4 * 65_536) / RESTORE_BLOCK, droppedHandles: 0 });
  });

  test('InstanceSnapshot — refuses when memory grew, a table changed size or a call is still in progress', async () => {
    const grown = await instantiate(STATEFUL);
    const one = new InstanceSnapshot([grown], fakeBindings().state);
    grown.exports.grow();
    assert.deepEqual(one.restore(), { restored: false, reason: `linear memory grew from ${4 * 65_536} to ${5 * 65_536} bytes` });

    const tabled = await instantiate(STATEFUL);
    const two = new InstanceSnapshot([tabled], fakeBindings().state);
    (tabled.exports[`${STATE_EXPORT_PREFIX}table:0`] as WebAssembly.Table).grow(1);
    assert.deepEqual(two.restore(), { restored: false, reason: 'a table changed size from 2 to 3' });

    const busy = await instantiate(STATEFUL);
    const bindings = fakeBindings();
    const three = new InstanceSnapshot([busy], bindings.state);
    bindings.borrows.push({});
    assert.deepEqual(three.restore(), { restored: false, reason: 'a borrowed resource is still in use' });
  });

  test('InstanceSnapshot — will not capture an instance whose code may write a table, or one compiled without the rewrite', async () => {
    const writes = await instantiate('(module (table 1 funcref) (func (export "f") (table.set (i32.const 0) (ref.null func))))');
    assert.throws(() => new InstanceSnapshot([writes], fakeBindings().state), (err: unknown) => err instanceof UnrestorableInstance && /may write a table/.test(err.message));
    const module = await WebAssembly.compile((await wat('(module (memory 1))')) as Uint8Array<ArrayBuffer>);
    assert.throws(() => new InstanceSnapshot([{ module, instance: new WebAssembly.Instance(module, {}) }], fakeBindings().state), UnrestorableInstance);
    const plain = await instantiate('(module (memory 1))');
    assert.throws(() => new InstanceSnapshot([plain], undefined), /do not expose their handle tables/);
  });
});

describe('component snapshot — the bindings hook', () => {
  const SOURCE = `export function instantiate() {
  const _debugLog = () => { if (!globalThis?.process?.env?.JCO_DEBUG) { return; } console.debug('x'); };
  _debugLog();
  let curResourceBorrows = [];
  const HANDLE_TABLES= [];
  const handleTable0 = [1 << 30, 0];
  const captureTable0= new Map();
  HANDLE_TABLES[0] = handleTable0;
  return {};
}`;

  test('hookBindings — hands over the handle and capture tables of the last instantiate()', async () => {
    const hooked = hookBindings(SOURCE);
    assert.equal(hooked.hooked, true);
    assert.doesNotMatch(hooked.source, /process\?\.env\?\.JCO_DEBUG\) \{ return; \}/);
    const module = (await import(`data:text/javascript,${encodeURIComponent(hooked.source)}`)) as Record<string, () => unknown>;
    module.instantiate?.();
    const state = module[BINDINGS_STATE_EXPORT]?.() as BindingsState;
    assert.deepEqual(state.handleTables, [[1 << 30, 0]]);
    assert.equal(state.captureTables.length, 1);
    assert.deepEqual(state.borrows(), []);
    assert.equal(state.tasks(), undefined);
    // Taken once: the next instantiate() records afresh.
    assert.equal(module[BINDINGS_STATE_EXPORT]?.(), undefined);
  });

  test('hookBindings — leaves bindings of another shape as they are', () => {
    assert.deepEqual(hookBindings('export function instantiate() { return {}; }'), { source: 'export function instantiate() { return {}; }', hooked: false, leanImports: 0 });
  });
});
