// Lays out a function's shipped files on a node: a read-only directory named by what it holds,
// made whole before it is used (written aside, then renamed), and shared by revisions alike.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileTargets, type FileMount } from '../manifest/index.js';

/**
 * The directory holding `mounts`' files as the function sees them, under `root`; made when
 * missing from the revision's artifacts (`artifacts` names → digests, `blob` reads one, verified;
 * only when the directory has to be made).
 */
export async function functionFilesDir(root: string, mounts: readonly FileMount[], artifacts: Readonly<Record<string, string>>, blob: (name: string, digest: string) => Promise<Buffer>): Promise<string> {
  const targets = [...fileTargets(mounts, Object.keys(artifacts)).entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  const id = createHash('sha256').update(JSON.stringify(targets.map(([guest, rel]) => [guest, artifacts[rel]]))).digest('hex').slice(0, 32);
  const dir = path.join(root, id);
  if (await stat(dir).then(() => true, () => false)) return dir;
  await mkdir(root, { recursive: true });
  const partial = await mkdtemp(path.join(root, `.${id}-`));
  try {
    for (const [guest, rel] of targets) {
      const file = path.join(partial, ...guest.split('/').filter(Boolean));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, await blob(rel, artifacts[rel]!), { mode: 0o444 });
    }
    await rename(partial, dir);
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    // Another build of the same files may have won the rename: theirs is as good.
    if (await stat(dir).then(() => true, () => false)) return dir;
    throw err;
  }
  return dir;
}
