// The file-system operations the store writes through: node:fs by default, a seam for fault injection.
import { mkdir, open, rename, rm } from 'node:fs/promises';

/**
 * Every write the store makes goes through one of these calls, so a test can fail or stop the
 * store at any one of them (disk full, I/O error, a crash) and then reopen the directory.
 * Reads do not go through it: what a crash leaves behind is read back with node:fs.
 */
export interface StoreFs {
  /** Creates a directory and its parents. */
  mkdir(dir: string): Promise<void>;
  /** Creates or truncates `file`, writes `data` and fsyncs it. */
  writeFile(file: string, data: Uint8Array | string): Promise<void>;
  /** Renames `from` to `to`, replacing `to` atomically. */
  rename(from: string, to: string): Promise<void>;
  /** Fsyncs a directory, so the renames inside it are durable. */
  syncDir(dir: string): Promise<void>;
  /** Removes a file or a directory tree; missing is not an error. */
  remove(target: string): Promise<void>;
}

/** {@link StoreFs} on node:fs. */
export const nodeStoreFs: StoreFs = {
  async mkdir(dir) {
    await mkdir(dir, { recursive: true });
  },
  async writeFile(file, data) {
    const handle = await open(file, 'w', 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  rename,
  async syncDir(dir) {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async remove(target) {
    await rm(target, { recursive: true, force: true });
  },
};
