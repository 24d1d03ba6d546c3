// Crash-safe file writes: temp file, fsync, rename, fsync the directory; the temp file removed on failure.
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { nodeStoreFs, type StoreFs } from './store-fs.js';

/** Prefix of temp files; anything with it found at start is a crash leftover. */
export const TEMP_PREFIX = '.tmp-';

/**
 * Writes `data` to `file` so that readers see the old contents or the new, never a part.
 * When a step fails (a full disk, an I/O error) the temp file is removed before the error is
 * rethrown, so a failed write leaves nothing behind; only a crash leaves a temp file, which
 * {@link removeTempLeftovers} clears at the next start.
 */
export async function writeFileAtomic(file: string, data: Uint8Array | string, fs: StoreFs = nodeStoreFs): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir);
  const temp = path.join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
  try {
    await fs.writeFile(temp, data);
    await fs.rename(temp, file);
  } catch (err) {
    await fs.remove(temp).catch(() => undefined);
    throw err;
  }
  await fs.syncDir(dir);
}

/** Removes temp files a crash left behind under `dir` (recursively). */
export async function removeTempLeftovers(dir: string): Promise<number> {
  let removed = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.name.startsWith(TEMP_PREFIX)) {
      await rm(full, { recursive: true, force: true });
      removed++;
    } else if (entry.isDirectory()) {
      removed += await removeTempLeftovers(full);
    }
  }
  return removed;
}
