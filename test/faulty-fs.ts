// A StoreFs that fails or stops the store at a chosen write step, for the fault-injection tests.
import { open } from 'node:fs/promises';
import { nodeStoreFs, type StoreFs } from '../src/store/index.js';

/** Thrown when a {@link FaultyFs} simulates a crash; nothing after it touches the disk. */
export class SimulatedCrash extends Error {
  override name = 'SimulatedCrash';
}

/** How a step fails: `fail` throws a system error and lets cleanup run; `stop` is a crash. */
export type FaultMode = { kind: 'fail'; code: 'EIO' | 'ENOSPC' } | { kind: 'stop' };

function systemError(code: string, syscall: string, target: string): NodeJS.ErrnoException {
  const text = code === 'ENOSPC' ? 'no space left on device' : 'i/o error';
  return Object.assign(new Error(`${code}: ${text}, ${syscall} '${target}'`), { code, syscall, path: target, errno: code === 'ENOSPC' ? -28 : -5 });
}

/**
 * Counts every write step of the store (mkdir, writeFile, rename, syncDir, remove) in `steps`.
 * Armed at step `n`, it fails or stops there; a writeFile step first writes half its data, as a
 * full disk or a crash part-way through would. After a stop every call throws and does nothing,
 * so no cleanup runs: what is on disk is what a killed process leaves.
 */
export class FaultyFs implements StoreFs {
  readonly steps: string[] = [];
  #fault: { at: number; mode: FaultMode } | undefined;
  #stopped = false;

  /** Fails or stops at the `at`-th step from now on (0-based over `steps`). */
  arm(at: number, mode: FaultMode): this {
    this.#fault = { at, mode };
    return this;
  }

  async #step(op: string, target: string, partial?: () => Promise<void>): Promise<void> {
    if (this.#stopped) throw new SimulatedCrash(`the store already stopped; ${op} ${target} did not happen`);
    const index = this.steps.push(`${op} ${target}`) - 1;
    const fault = this.#fault;
    if (!fault || fault.at !== index) return;
    if (partial) await partial();
    if (fault.mode.kind === 'stop') {
      this.#stopped = true;
      throw new SimulatedCrash(`stopped at step ${index}: ${op} ${target}`);
    }
    throw systemError(fault.mode.code, op, target);
  }

  async mkdir(dir: string): Promise<void> {
    await this.#step('mkdir', dir);
    await nodeStoreFs.mkdir(dir);
  }

  async writeFile(file: string, data: Uint8Array | string): Promise<void> {
    await this.#step('writeFile', file, async () => {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      const handle = await open(file, 'w', 0o600);
      try {
        await handle.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
      } finally {
        await handle.close();
      }
    });
    await nodeStoreFs.writeFile(file, data);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.#step('rename', `${from} -> ${to}`);
    await nodeStoreFs.rename(from, to);
  }

  async syncDir(dir: string): Promise<void> {
    await this.#step('syncDir', dir);
    await nodeStoreFs.syncDir(dir);
  }

  async remove(target: string): Promise<void> {
    await this.#step('remove', target);
    await nodeStoreFs.remove(target);
  }
}
