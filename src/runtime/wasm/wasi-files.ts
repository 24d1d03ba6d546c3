// A read-only preopened directory for a WAGI run: the files shipped with its function, and nothing
// else of the host. Paths are resolved inside the directory only (no `..` past it, no absolute
// paths, no symbolic links); every call that would change a file answers EROFS. The confinement
// itself (ConfinedDir) is shared with the component runtime's wasi:filesystem.
import { lstatSync, readdirSync, readFileSync, realpathSync, type Stats } from 'node:fs';
import path from 'node:path';

/** Why a path inside a confined directory cannot be used. */
export type Unreachable = 'no-entry' | 'not-directory' | 'symlink';

/** One entry of a confined directory's listing. */
export interface ConfinedEntry {
  name: string;
  /** Its path inside the confined directory. */
  inner: string;
  isDirectory: boolean;
}

/**
 * A host directory seen from inside: paths are resolved against it without leaving it, and
 * symbolic links (as the last part of a path or anywhere before it) are never followed.
 */
export class ConfinedDir {
  readonly root: string;
  #realRoot: string | undefined;

  constructor(root: string) {
    this.root = root;
  }

  /**
   * The path inside the directory that `guestPath`, relative to the inside directory `dirInner`
   * ('' for the root), names; undefined when it is absolute, holds a NUL, or climbs out.
   */
  resolve(dirInner: string, guestPath: string): string | undefined {
    if (guestPath.startsWith('/') || guestPath.includes('\0')) return undefined;
    // Joining under '/' would quietly stop a climb at the root; a path that climbs past it is
    // refused instead, counting from the directory it is relative to.
    let depth = dirInner === '' ? 0 : dirInner.split('/').length;
    for (const part of guestPath.split('/')) {
      if (part === '..') depth--;
      else if (part !== '' && part !== '.') depth++;
      if (depth < 0) return undefined;
    }
    const joined = path.posix.normalize(path.posix.join('/', dirInner, guestPath));
    return joined.slice(1).replace(/\/$/, '');
  }

  /** The host path of `inner`. */
  hostPath(inner: string): string {
    return path.join(this.root, inner);
  }

  /** What lies at `inner`: its stats, or why it cannot be reached. */
  stat(inner: string): Stats | Unreachable {
    let stats: Stats;
    try {
      stats = lstatSync(this.hostPath(inner));
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'not-directory' : 'no-entry';
    }
    if (stats.isSymbolicLink()) return 'symlink';
    // lstat follows links before the last part: a directory link on the way would lead out.
    if (inner.includes('/')) {
      let real: string;
      try {
        this.#realRoot ??= realpathSync.native(this.root);
        real = realpathSync.native(this.hostPath(inner));
      } catch {
        return 'no-entry';
      }
      if (real !== path.join(this.#realRoot, inner)) return 'symlink';
    }
    return stats;
  }

  /** Entries of the directory `inner`, sorted by name, symbolic links left out. */
  list(inner: string): ConfinedEntry[] {
    const out: ConfinedEntry[] = [];
    let dirents;
    try {
      dirents = readdirSync(this.hostPath(inner), { withFileTypes: true });
    } catch {
      // Gone since it was opened (the node lays files out once, so only by hand): nothing to list.
      return out;
    }
    for (const dirent of dirents.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (dirent.isSymbolicLink() || !(dirent.isDirectory() || dirent.isFile())) continue;
      out.push({ name: dirent.name, inner: inner === '' ? dirent.name : `${inner}/${dirent.name}`, isDirectory: dirent.isDirectory() });
    }
    return out;
  }

  /** The bytes of the regular file `inner` (already found reachable by {@link stat}). */
  read(inner: string): Buffer {
    return readFileSync(this.hostPath(inner));
  }
}

/** WASI errno values of the file calls. */
export const FileErrno = {
  SUCCESS: 0,
  BADF: 8,
  INVAL: 28,
  ISDIR: 31,
  NOENT: 44,
  NOTDIR: 54,
  ROFS: 69,
  NOTCAPABLE: 76,
} as const;

/** The first descriptor after stdio: the preopened directory. */
export const PREOPEN_FD = 3;

const FILETYPE_DIRECTORY = 3;
const FILETYPE_REGULAR = 4;
const RIGHT_FD_WRITE = 1n << 6n;
const OFLAG_CREAT = 1;
const OFLAG_DIRECTORY = 2;
const OFLAG_EXCL = 4;
const OFLAG_TRUNC = 8;

/** Rights of an open file: read, seek, tell, advise, filestat. */
export const FILE_RIGHTS = (1n << 1n) | (1n << 2n) | (1n << 5n) | (1n << 7n) | (1n << 21n);
/** Rights of an open directory: open paths, readdir, path and fd filestat. */
export const DIR_RIGHTS = (1n << 13n) | (1n << 14n) | (1n << 18n) | (1n << 21n);

interface OpenDir {
  kind: 'dir';
  /** Path inside the preopen, '' for its root. */
  inner: string;
}
interface OpenFile {
  kind: 'file';
  inner: string;
  data: Buffer;
  offset: number;
}
export type OpenEntry = OpenDir | OpenFile;

/** What a stat call returns of an entry. */
export interface EntryStat {
  filetype: number;
  size: bigint;
  ino: bigint;
  mtimNs: bigint;
}

/** One run's view of one preopened directory, named `/` to the guest. */
export class PreopenedFiles {
  readonly #dir: ConfinedDir;
  readonly #open = new Map<number, OpenEntry>([[PREOPEN_FD, { kind: 'dir', inner: '' }]]);
  #nextFd = PREOPEN_FD + 1;
  readonly #inodes = new Map<string, bigint>();

  constructor(root: string) {
    this.#dir = new ConfinedDir(root);
  }

  /** The guest's name of a preopened descriptor, or undefined when `fd` is not one. */
  prestatName(fd: number): string | undefined {
    return fd === PREOPEN_FD && this.#open.has(fd) ? '/' : undefined;
  }

  entry(fd: number): OpenEntry | undefined {
    return this.#open.get(fd);
  }

  close(fd: number): number {
    return this.#open.delete(fd) ? FileErrno.SUCCESS : FileErrno.BADF;
  }

  /**
   * The path inside the preopen that `guestPath` (relative to directory `dirFd`) names, or an
   * errno: absolute paths and paths that climb out are not capable.
   */
  resolve(dirFd: number, guestPath: string): { inner: string } | { errno: number } {
    const dir = this.#open.get(dirFd);
    if (!dir) return { errno: FileErrno.BADF };
    if (dir.kind !== 'dir') return { errno: FileErrno.NOTDIR };
    const inner = this.#dir.resolve(dir.inner, guestPath);
    return inner === undefined ? { errno: FileErrno.NOTCAPABLE } : { inner };
  }

  #stat(inner: string): Stats | number {
    const stats = this.#dir.stat(inner);
    if (stats === 'symlink') return FileErrno.NOTCAPABLE;
    if (stats === 'not-directory') return FileErrno.NOTDIR;
    if (stats === 'no-entry') return FileErrno.NOENT;
    return stats;
  }

  #ino(inner: string): bigint {
    let ino = this.#inodes.get(inner);
    if (ino === undefined) {
      ino = BigInt(this.#inodes.size + 1);
      this.#inodes.set(inner, ino);
    }
    return ino;
  }

  /** Stats a path inside the preopen. */
  statPath(inner: string): EntryStat | number {
    const stats = this.#stat(inner);
    if (typeof stats === 'number') return stats;
    return { filetype: stats.isDirectory() ? FILETYPE_DIRECTORY : FILETYPE_REGULAR, size: BigInt(stats.isDirectory() ? 0 : stats.size), ino: this.#ino(inner), mtimNs: BigInt(Math.floor(stats.mtimeMs)) * 1_000_000n };
  }

  /** Opens `inner` for reading; a request to create, truncate or write is refused (read-only). */
  open(inner: string, oflags: number, rightsBase: bigint): { fd: number } | { errno: number } {
    const stats = this.#stat(inner);
    if ((oflags & (OFLAG_CREAT | OFLAG_TRUNC | OFLAG_EXCL)) !== 0) return { errno: FileErrno.ROFS };
    if (typeof stats === 'number') return { errno: stats };
    if (stats.isDirectory()) {
      if ((rightsBase & RIGHT_FD_WRITE) !== 0n && (oflags & OFLAG_DIRECTORY) === 0) return { errno: FileErrno.ISDIR };
      const fd = this.#nextFd++;
      this.#open.set(fd, { kind: 'dir', inner });
      return { fd };
    }
    if ((oflags & OFLAG_DIRECTORY) !== 0) return { errno: FileErrno.NOTDIR };
    if ((rightsBase & RIGHT_FD_WRITE) !== 0n) return { errno: FileErrno.ROFS };
    const fd = this.#nextFd++;
    this.#open.set(fd, { kind: 'file', inner, data: this.#dir.read(inner), offset: 0 });
    return { fd };
  }

  /** A directory's entries, `.` and `..` first, each with its type and inode. */
  list(inner: string): Array<{ name: string; filetype: number; ino: bigint }> {
    const out = [
      { name: '.', filetype: FILETYPE_DIRECTORY, ino: this.#ino(inner) },
      { name: '..', filetype: FILETYPE_DIRECTORY, ino: this.#ino(inner.includes('/') ? inner.slice(0, inner.lastIndexOf('/')) : '') },
    ];
    for (const entry of this.#dir.list(inner)) {
      out.push({ name: entry.name, filetype: entry.isDirectory ? FILETYPE_DIRECTORY : FILETYPE_REGULAR, ino: this.#ino(entry.inner) });
    }
    return out;
  }
}
