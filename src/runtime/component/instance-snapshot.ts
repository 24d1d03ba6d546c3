// The post-initialisation state of one component instance, and putting a used instance back to it.
import type { BindingsState } from './bindings-hooks.js';
import { coreStateFacts, STATE_EXPORT_PREFIX } from './core-state-exports.js';

/**
 * Bytes compared, and copied back when they differ, as one unit. Smaller blocks copy less of a
 * page a request barely touched but cost more calls; 64 KiB measured best on StarlingMonkey (see
 * docs/component-runtime.md).
 */
export const RESTORE_BLOCK = 64 * 1024;

/**
 * A block of zeros, standing for the blocks a memory starts with as zeros (75 of StarlingMonkey's
 * 145): they are compared against it and not kept, 4.7 MiB less per worker.
 */
const ZERO_BLOCK = Buffer.alloc(RESTORE_BLOCK);

/** jco's flag bit in handle-table words: on a scope word it marks the slot free. */
const T_FLAG = 1 << 30;

/** What one restore did, or why the instance cannot be restored. */
export type RestoreOutcome =
  | {
      restored: true;
      /** Memory blocks that differed and were copied back. */
      dirtyBlocks: number;
      totalBlocks: number;
      /** Resource handles the guest left open (its engine drops them only when it collects garbage). */
      droppedHandles: number;
    }
  | { restored: false; reason: string };

interface MemoryImage {
  memory: WebAssembly.Memory;
  /** Each block's first contents; undefined where it was all zeros (about half of StarlingMonkey's). */
  blocks: Array<Buffer | undefined>;
  bytes: number;
}

/** Copies a memory's blocks, keeping none for blocks of zeros. */
function imageOf(memory: WebAssembly.Memory): MemoryImage {
  const live = Buffer.from(memory.buffer);
  const bytes = live.byteLength;
  const blocks: Array<Buffer | undefined> = [];
  for (let at = 0; at < bytes; at += RESTORE_BLOCK) {
    const end = Math.min(at + RESTORE_BLOCK, bytes);
    blocks.push(live.compare(ZERO_BLOCK, 0, end - at, at, end) === 0 ? undefined : Buffer.from(live.subarray(at, end)));
  }
  return { memory, blocks, bytes };
}

interface GlobalImage {
  global: WebAssembly.Global;
  value: unknown;
}

interface TableImage {
  table: WebAssembly.Table;
  length: number;
}

/**
 * A bindings handle table that held handles right after instantiation (a guest that took its
 * preopens, say, while initialising), with the host objects behind them: put back as they were.
 */
interface HandleImage {
  table: BindingsState['handleTables'][number];
  words: number[];
  reps: Set<number> | undefined;
}
interface CaptureImage {
  capture: Map<number, unknown>;
  entries: Array<[number, unknown, unknown]>;
}

/** A core module and its instance, as the bindings made them. */
export interface CoreInstance {
  module: WebAssembly.Module;
  instance: WebAssembly.Instance;
}

/** Why an instance's state cannot be captured at all (then every request gets a new instance). */
export class UnrestorableInstance extends Error {
  override name = 'UnrestorableInstance';
}

function uniq<T>(items: T[]): T[] {
  return [...new Set(items)];
}

/**
 * A copy of everything a request can change in a component instance: each linear memory, each
 * mutable global, each table (through the exports exposeCoreState added), and the bindings' handle
 * tables. {@link restore} puts it all back, copying only the memory blocks that differ, and
 * refuses (so that the caller discards the instance) whenever it cannot prove the result equal to
 * a new instance: a memory that grew, a table whose size or entries changed, a resource handle
 * still open, a call still in progress in the bindings.
 */
export class InstanceSnapshot {
  readonly #memories: MemoryImage[];
  readonly #globals: GlobalImage[];
  readonly #tables: TableImage[];
  readonly #bindings: BindingsState;
  readonly #handles: HandleImage[];
  readonly #captures: CaptureImage[];
  /** Handles open right after instantiation (not left open by a request). */
  readonly #firstOpen: number;
  /**
   * Tasks the bindings still list once instantiation is over: an import called while the guest
   * initialised leaves its task behind (jco 1.24), in a new instance as much as in a restored one.
   */
  readonly #idleTasks: Set<unknown>;
  readonly #idleTaskIds: number;

  /** Captures the state of a newly made instance from its core instances and its bindings. */
  constructor(cores: readonly CoreInstance[], bindings: BindingsState | undefined) {
    if (!bindings) throw new UnrestorableInstance('the bindings do not expose their handle tables');
    const memories: WebAssembly.Memory[] = [];
    const globals: WebAssembly.Global[] = [];
    const tables: WebAssembly.Table[] = [];
    for (const core of cores) {
      const facts = coreStateFacts(core.module);
      if (!facts) throw new UnrestorableInstance('a core module was compiled without its state exported');
      // Tables are checked by size only: their entries stay as instantiation set them unless code writes them.
      if (facts.writesTables) throw new UnrestorableInstance(`a core module may write a table: ${facts.reason ?? 'unknown'}`);
      for (const [name, value] of Object.entries(core.instance.exports)) {
        if (value instanceof WebAssembly.Memory) memories.push(value);
        else if (value instanceof WebAssembly.Table) tables.push(value);
        else if (value instanceof WebAssembly.Global && name.startsWith(STATE_EXPORT_PREFIX)) globals.push(value);
      }
    }
    this.#memories = uniq(memories).map(imageOf);
    this.#globals = uniq(globals).map((global) => {
      try {
        return { global, value: global.value };
      } catch (err) {
        // A v128 global cannot be read from JS.
        throw new UnrestorableInstance(`a global cannot be read: ${(err as Error).message}`);
      }
    });
    this.#tables = uniq(tables).map((table) => ({ table, length: table.length }));
    this.#bindings = bindings;
    this.#idleTasks = new Set([...(bindings.tasks()?.values() ?? [])].flat());
    this.#idleTaskIds = bindings.currentTaskIds()?.length ?? 0;
    const handle = bindings.handleSymbol();
    this.#handles = bindings.handleTables.filter((t) => t && t.length > 2).map((table) => ({ table, words: [...table], reps: table._createdReps && new Set(table._createdReps) }));
    this.#captures = bindings.captureTables
      .filter((c) => c.size > 0)
      .map((capture) => ({ capture, entries: [...capture].map(([rep, object]): [number, unknown, unknown] => [rep, object, handle && object && typeof object === 'object' ? (object as Record<symbol, unknown>)[handle] : undefined]) }));
    this.#firstOpen = this.#handles.reduce((sum, { words }) => sum + words.filter((word, i) => i >= 2 && i % 2 === 0 && (word & T_FLAG) === 0).length, 0);
  }

  /** Bytes of linear memory the snapshot stands for. */
  get memoryBytes(): number {
    return this.#memories.reduce((sum, m) => sum + m.bytes, 0);
  }

  /** Bytes the snapshot keeps for its memories (blocks of zeros are not kept). */
  get keptBytes(): number {
    return this.#memories.reduce((sum, m) => sum + m.blocks.reduce((blocks, block) => blocks + (block?.byteLength ?? 0), 0), 0);
  }

  /** Linear memory in use now, in bytes (grows when the guest grows a memory). */
  currentMemoryBytes(): number {
    return this.#memories.reduce((sum, m) => sum + m.memory.buffer.byteLength, 0);
  }

  /** Puts the instance back to its captured state, or says why it cannot. */
  restore(): RestoreOutcome {
    for (const image of this.#memories) {
      if (image.memory.buffer.byteLength !== image.bytes) return { restored: false, reason: `linear memory grew from ${image.bytes} to ${image.memory.buffer.byteLength} bytes` };
    }
    for (const image of this.#tables) {
      if (image.table.length !== image.length) return { restored: false, reason: `a table changed size from ${image.length} to ${image.table.length}` };
    }
    const busy = this.#callInProgress();
    if (busy) return { restored: false, reason: busy };

    let dirtyBlocks = 0;
    let totalBlocks = 0;
    for (const image of this.#memories) {
      const live = Buffer.from(image.memory.buffer);
      const { blocks } = image;
      for (let block = 0, at = 0; block < blocks.length; block++, at += RESTORE_BLOCK) {
        const end = Math.min(at + RESTORE_BLOCK, image.bytes);
        const first = blocks[block];
        totalBlocks++;
        if (live.compare(first ?? ZERO_BLOCK, 0, end - at, at, end) === 0) continue;
        if (first) first.copy(live, at);
        else live.fill(0, at, end);
        dirtyBlocks++;
      }
    }
    for (const image of this.#globals) image.global.value = image.value;
    const droppedHandles = this.#resetBindings();
    return { restored: true, dirtyBlocks, totalBlocks, droppedHandles };
  }

  /** Names a call the bindings still have in progress, if any: its state would not be restored. */
  #callInProgress(): string | undefined {
    const bindings = this.#bindings;
    if (bindings.borrows().length > 0) return 'a borrowed resource is still in use';
    const tasks = bindings.tasks();
    if (tasks) for (const list of tasks.values()) if (list.some((task) => !this.#idleTasks.has(task))) return 'a call is still in progress in the bindings';
    if ((bindings.currentTaskIds()?.length ?? 0) > this.#idleTaskIds) return 'a call is still in progress in the bindings';
    return undefined;
  }

  /**
   * Empties the handle tables as a new instance has them, so that handle numbers start over, and
   * lets go of the host objects behind handles the guest left open. Its references to them lived
   * in linear memory, which is restored by now, so nothing can name them again; they belong to a
   * request whose scope has ended (outbound calls cancelled, bodies closed). Returns how many.
   */
  #resetBindings(): number {
    let open = 0;
    for (const table of this.#bindings.handleTables) {
      // Most resource types are not used by a request: their tables are as new already.
      if (!table || (table.length === 2 && table[0] === T_FLAG && !table._createdReps?.size)) continue;
      for (let slot = 2; slot < table.length; slot += 2) if (((table[slot] as number) & T_FLAG) === 0) open++;
      table.length = 2;
      table[0] = T_FLAG;
      table[1] = 0;
      table._createdReps?.clear();
    }
    const handle = this.#bindings.handleSymbol();
    for (const capture of this.#bindings.captureTables) {
      if (capture.size === 0) continue;
      // A host object remembers its handle and would be passed under it again: forget it.
      if (handle) for (const object of capture.values()) if (object && typeof object === 'object' && handle in object) (object as Record<symbol, unknown>)[handle] = undefined;
      capture.clear();
    }
    if (this.#handles.length > 0 || this.#captures.length > 0) this.#putBackFirstHandles(handle);
    return Math.max(0, open - this.#firstOpen);
  }

  /** Puts back the handles instantiation made, and the host objects behind them, after the tables were emptied. */
  #putBackFirstHandles(handle: symbol | undefined): void {
    for (const image of this.#handles) {
      image.table.length = 0;
      image.table.push(...image.words);
      if (image.reps) image.table._createdReps = new Set(image.reps);
    }
    for (const { capture, entries } of this.#captures) {
      for (const [rep, object, handleValue] of entries) {
        capture.set(rep, object);
        if (handle && object && typeof object === 'object') (object as Record<symbol, unknown>)[handle] = handleValue;
      }
    }
  }
}
