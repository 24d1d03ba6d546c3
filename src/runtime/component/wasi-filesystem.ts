// wasi:filesystem for components: one read-only preopen, `/`, holding the function's shipped files,
// and nothing else of the host. Paths are confined by the same ConfinedDir that WAGI modules use;
// every call that would change something answers `read-only`.
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { ConfinedDir } from '../wasm/index.js';
import { WasiResultError } from './wasi-result-error.js';

/** The wasi:filesystem `error-code` cases this host answers with. */
type FsErrorCode = 'invalid' | 'is-directory' | 'no-entry' | 'not-directory' | 'not-permitted' | 'read-only';
type DescriptorType = 'directory' | 'regular-file';

interface Datetime {
  seconds: bigint;
  nanoseconds: number;
}

/** wasi:filesystem `descriptor-stat`. */
interface DescriptorStat {
  type: DescriptorType;
  linkCount: bigint;
  size: bigint;
  dataAccessTimestamp: Datetime | undefined;
  dataModificationTimestamp: Datetime | undefined;
  statusChangeTimestamp: Datetime | undefined;
}

/** wasi:filesystem `descriptor-flags`, as the bindings pass a flags value. */
interface DescriptorFlags {
  read?: boolean;
  write?: boolean;
  fileIntegritySync?: boolean;
  dataIntegritySync?: boolean;
  requestedWriteSync?: boolean;
  mutateDirectory?: boolean;
}

/** wasi:filesystem `open-flags`. */
interface OpenFlags {
  create?: boolean;
  directory?: boolean;
  exclusive?: boolean;
  truncate?: boolean;
}

/** wasi:filesystem `directory-entry`. */
interface DirectoryEntry {
  type: DescriptorType;
  name: string;
}

/** wasi:filesystem `metadata-hash-value`. */
interface MetadataHashValue {
  lower: bigint;
  upper: bigint;
}

function fail(code: FsErrorCode): never {
  throw new WasiResultError(code);
}

/** What every descriptor of one host shares: the confined directory, and how to make an input stream. */
interface FilesContext {
  readonly dir: ConfinedDir;
  /** A wasi:io input-stream over `bytes`, ended after them. */
  readonly openStream: (bytes: Uint8Array) => unknown;
}

function datetimeOf(ms: number): Datetime {
  const whole = Math.floor(ms);
  return { seconds: BigInt(Math.floor(whole / 1000)), nanoseconds: (whole % 1000) * 1_000_000 };
}

function statOf(stats: Stats): DescriptorStat {
  // One time for all three: the layout is written once and never changed, and the host's access
  // times are nothing the function needs to see.
  const modified = datetimeOf(stats.mtimeMs);
  return {
    type: stats.isDirectory() ? 'directory' : 'regular-file',
    linkCount: BigInt(stats.nlink),
    size: stats.isDirectory() ? 0n : BigInt(stats.size),
    dataAccessTimestamp: modified,
    dataModificationTimestamp: modified,
    statusChangeTimestamp: modified,
  };
}

function hashOf(stats: Stats): MetadataHashValue {
  const digest = createHash('sha256').update(`${stats.dev}:${stats.ino}`).digest();
  return { lower: digest.readBigUInt64LE(0), upper: digest.readBigUInt64LE(8) };
}

/** Clamps a guest `filesize` to an index into `length` bytes. */
function clampTo(value: bigint, length: number): number {
  return value >= BigInt(length) ? length : Number(value);
}

/** wasi:filesystem/types `directory-entry-stream`: a listing taken when it was asked for. */
class DirectoryEntryStream {
  #next = 0;

  constructor(private readonly entries: readonly DirectoryEntry[]) {}

  readDirectoryEntry(): DirectoryEntry | undefined {
    return this.entries[this.#next++];
  }
}

/** wasi:filesystem/types `descriptor`: a directory or regular file inside the preopen, open for reading. */
class Descriptor {
  readonly #ctx: FilesContext;
  /** Its path inside the preopen, '' for the preopen itself. */
  readonly #inner: string;
  readonly #directory: boolean;
  /** A file's bytes, read at its first read (the laid-out files never change). */
  #data: Buffer | undefined;

  constructor(ctx: FilesContext, inner: string, directory: boolean) {
    this.#ctx = ctx;
    this.#inner = inner;
    this.#directory = directory;
  }

  #stats(inner: string): Stats {
    const stats = this.#ctx.dir.stat(inner);
    if (stats === 'symlink') fail('not-permitted');
    if (typeof stats === 'string') fail(stats);
    return stats;
  }

  #file(): Buffer {
    if (this.#directory) fail('is-directory');
    this.#data ??= this.#ctx.dir.read(this.#inner);
    return this.#data;
  }

  /** The path inside the preopen that `path`, relative to this directory, names; refused when it leaves it. */
  #resolve(path: string): string {
    if (!this.#directory) fail('not-directory');
    const inner = this.#ctx.dir.resolve(this.#inner, path);
    if (inner === undefined) fail('not-permitted');
    return inner;
  }

  readViaStream(offset: bigint): unknown {
    const data = this.#file();
    return this.#ctx.openStream(data.subarray(clampTo(offset, data.length)));
  }

  writeViaStream(): never {
    return fail('read-only');
  }

  appendViaStream(): never {
    return fail('read-only');
  }

  /** Advice only: nothing to do for files held whole. */
  advise(): void {}

  /** Nothing is ever written, so there is nothing to sync. */
  syncData(): void {}

  getFlags(): Required<DescriptorFlags> {
    return { read: true, write: false, fileIntegritySync: false, dataIntegritySync: false, requestedWriteSync: false, mutateDirectory: false };
  }

  getType(): DescriptorType {
    return this.#directory ? 'directory' : 'regular-file';
  }

  setSize(): never {
    return fail('read-only');
  }

  setTimes(): never {
    return fail('read-only');
  }

  read(length: bigint, offset: bigint): [Uint8Array, boolean] {
    const data = this.#file();
    const start = clampTo(offset, data.length);
    const end = Math.min(data.length, start + clampTo(length, data.length));
    // A short read (or none) is the end of the file.
    return [data.subarray(start, end), BigInt(end - start) < length || start === data.length];
  }

  write(): never {
    return fail('read-only');
  }

  readDirectory(): DirectoryEntryStream {
    if (!this.#directory) fail('not-directory');
    const entries = this.#ctx.dir.list(this.#inner).map((e): DirectoryEntry => ({ type: e.isDirectory ? 'directory' : 'regular-file', name: e.name }));
    return new DirectoryEntryStream(entries);
  }

  sync(): void {}

  createDirectoryAt(): never {
    return fail('read-only');
  }

  stat(): DescriptorStat {
    return statOf(this.#stats(this.#inner));
  }

  statAt(_pathFlags: unknown, path: string): DescriptorStat {
    return statOf(this.#stats(this.#resolve(path)));
  }

  setTimesAt(): never {
    return fail('read-only');
  }

  linkAt(): never {
    return fail('read-only');
  }

  openAt(_pathFlags: unknown, path: string, openFlags: OpenFlags, flags: DescriptorFlags): Descriptor {
    const inner = this.#resolve(path);
    if (openFlags.create || openFlags.truncate || openFlags.exclusive || flags.write || flags.mutateDirectory) fail('read-only');
    const stats = this.#stats(inner);
    if (openFlags.directory && !stats.isDirectory()) fail('not-directory');
    return new Descriptor(this.#ctx, inner, stats.isDirectory());
  }

  /** No symbolic link is ever visible: one that is there is refused, anything else is not a link. */
  readlinkAt(path: string): never {
    const stats = this.#ctx.dir.stat(this.#resolve(path));
    if (stats === 'symlink') fail('not-permitted');
    if (typeof stats === 'string') fail(stats);
    return fail('invalid');
  }

  removeDirectoryAt(): never {
    return fail('read-only');
  }

  renameAt(): never {
    return fail('read-only');
  }

  symlinkAt(): never {
    return fail('read-only');
  }

  unlinkFileAt(): never {
    return fail('read-only');
  }

  isSameObject(other: Descriptor): boolean {
    return other instanceof Descriptor && other.#ctx === this.#ctx && other.#inner === this.#inner;
  }

  metadataHash(): MetadataHashValue {
    return hashOf(this.#stats(this.#inner));
  }

  metadataHashAt(_pathFlags: unknown, path: string): MetadataHashValue {
    return hashOf(this.#stats(this.#resolve(path)));
  }
}

/** Options for {@link filesystemImports}. */
export interface FilesystemImportsOptions {
  /** The function's files directory, preopened as `/`; none when undefined. @default undefined */
  root?: string | undefined;
  /** Makes a wasi:io input-stream over `bytes` (the host's own class, so that the bindings accept it). */
  openStream: (bytes: Uint8Array) => unknown;
}

/** The `wasi:filesystem/types` and `wasi:filesystem/preopens` imports of one component host. */
export function filesystemImports(options: FilesystemImportsOptions): { types: Record<string, unknown>; preopens: Record<string, unknown> } {
  const ctx: FilesContext | undefined = options.root === undefined ? undefined : { dir: new ConfinedDir(options.root), openStream: options.openStream };
  return {
    types: {
      Descriptor,
      DirectoryEntryStream,
      // File streams hold bytes already read (read-via-stream reports a failed read itself), so
      // no stream error ever comes from a file.
      filesystemErrorCode: (): undefined => undefined,
    },
    preopens: {
      // A new descriptor on every call: each is a handle of its own to the guest.
      getDirectories: (): Array<[Descriptor, string]> => (ctx ? [[new Descriptor(ctx, '', true), '/']] : []),
    },
  };
}
