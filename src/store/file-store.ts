// The embedded artifact store: content-addressed blobs and immutable app revisions under a data directory.
//
// Layout:  blobs/sha256/<2 hex>/<64 hex>         artifact bytes
//          apps/<app>/revisions/<n>.json          one immutable revision each
//          apps/<app>/current                     the revision number being served
//          damaged/                               blobs found not to match their digest, moved aside
// A deploy writes its blobs, then its revision file, then flips `current`; each step is an atomic
// rename, so a crash at any point leaves the previous revision current and complete. Everything
// read is verified (blob digests, the revision schema, the pointer); damage is reported, never skipped.
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { removeTempLeftovers, TEMP_PREFIX, writeFileAtomic } from './atomic-file.js';
import { checkExpected } from './deploy-conflict.js';
import { readPointer, readRevisionFile, type FileRead } from './revision-file.js';
import { nodeStoreFs, type StoreFs } from './store-fs.js';
import type { AppRecord, ArtifactStore, CommitOptions, DamageKind, DamageReport, Revision, RevisionInput, StoreEvents } from './artifact-store.js';

/** sha256 hex digest of bytes. */
export function digestOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const DIGEST = /^[0-9a-f]{64}$/;

function notFound(message: string): LamplighterError {
  return new LamplighterError(ErrorCodes.NOT_FOUND, message);
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** A file's identity for the verified-blob memo: any write through the file system changes it. */
function identityOf(s: BigIntStats): string {
  return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/** Options for {@link FileStore.open}. */
export interface FileStoreOptions {
  /** The file system the store writes through (tests inject faults here). @default nodeStoreFs */
  fs?: StoreFs;
  /** Who hears about damaged files and failed writes. @default {} (nobody) */
  events?: StoreEvents;
}

/** {@link ArtifactStore} on the local file system. */
export class FileStore implements ArtifactStore {
  readonly dir: string;
  readonly #fs: StoreFs;
  readonly #events: StoreEvents;
  /** Damaged files already reported, with the reason: each is reported once until it is rewritten. */
  readonly #reported = new Map<string, string>();
  /** Blobs hashed since the store opened, by digest → the file's identity then; unchanged ones are not hashed again. */
  readonly #verified = new Map<string, string>();
  /** The last pointer move queued per app: moves of one app run one at a time, so a check and its flip are one step. */
  readonly #moves = new Map<string, Promise<unknown>>();

  private constructor(dir: string, options: FileStoreOptions) {
    this.dir = dir;
    this.#fs = options.fs ?? nodeStoreFs;
    this.#events = options.events ?? {};
  }

  /** Opens (creating) a store under `dir`, clearing crash leftovers. */
  static async open(dir: string, options: FileStoreOptions = {}): Promise<FileStore> {
    await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    await mkdir(path.join(dir, 'apps'), { recursive: true });
    await removeTempLeftovers(dir);
    return new FileStore(path.resolve(dir), options);
  }

  private blobPath(digest: string): string {
    if (!DIGEST.test(digest)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `'${digest}' is not a sha256 hex digest`);
    return path.join(this.dir, 'blobs', 'sha256', digest.slice(0, 2), digest);
  }

  private appDir(app: string): string {
    if (!/^[a-z][a-z0-9-]*$/.test(app)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `'${app}' is not an app name`);
    return path.join(this.dir, 'apps', app);
  }

  #revisionPath(app: string, number: number): string {
    return path.join(this.appDir(app), 'revisions', `${number}.json`);
  }

  #pointerPath(app: string): string {
    return path.join(this.appDir(app), 'current');
  }

  /** Reports a damaged file once (until it is rewritten). */
  #damaged(kind: DamageKind, file: string, reason: string, movedTo?: string): void {
    if (this.#reported.get(file) === reason) return;
    this.#reported.set(file, reason);
    const report: DamageReport = { kind, file, reason, ...(movedTo ? { movedTo } : {}) };
    this.#events.damaged?.(report);
  }

  /** Writes one file atomically; a failure becomes a clear error, is reported, and leaves no temp file. */
  async #write(file: string, data: Uint8Array | string, what: string): Promise<void> {
    try {
      await writeFileAtomic(file, data, this.#fs);
    } catch (err) {
      throw this.#writeError(err, file, what);
    }
    this.#reported.delete(file);
  }

  #writeError(err: unknown, file: string, what: string): unknown {
    const code = errnoOf(err);
    // Anything but a system error (a bug, or a test's simulated crash) goes up as it is.
    if (!code) return err;
    const cause = (err as Error).message;
    const error = code === 'ENOSPC' || code === 'EDQUOT'
      ? new LamplighterError(ErrorCodes.STORAGE_FULL, `Cannot store ${what}: the disk holding the data directory ${this.dir} is full (${cause}); its temporary file was removed. Free some space and try again`, { cause: err })
      : new LamplighterError(ErrorCodes.INTERNAL, `Cannot store ${what}: writing ${file} failed (${cause}); its temporary file was removed`, { cause: err });
    this.#events.writeFailed?.({ file, what, code, error });
    return error;
  }

  /**
   * Reads a blob and checks its digest. Missing: undefined. Damaged: moved aside under `damaged/`
   * (so the next upload of the same digest replaces it), reported, and thrown as LL_STORE_DAMAGED.
   */
  async #readBlob(digest: string): Promise<Buffer | undefined> {
    const file = this.blobPath(digest);
    let bytes: Buffer;
    let identity: string;
    try {
      // One open file for both, so the bytes hashed are the bytes of the file identified.
      const handle = await open(file, 'r');
      try {
        identity = identityOf(await handle.stat({ bigint: true }));
        bytes = await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      return this.#blobDamaged(digest, file, `cannot be read (${(err as Error).message})`);
    }
    if (this.#verified.get(digest) === identity) return bytes;
    const actual = digestOf(bytes);
    if (actual === digest) {
      this.#verified.set(digest, identity);
      return bytes;
    }
    return this.#blobDamaged(digest, file, `holds ${bytes.length} bytes whose sha256 is ${actual}, not the ${digest} it is named after`);
  }

  async #identity(file: string): Promise<string> {
    return identityOf(await stat(file, { bigint: true }));
  }

  async #blobDamaged(digest: string, file: string, reason: string): Promise<never> {
    this.#verified.delete(digest);
    const aside = path.join(this.dir, 'damaged', `${digest}.${Date.now()}`);
    let movedTo: string | undefined;
    try {
      await this.#fs.mkdir(path.dirname(aside));
      await this.#fs.rename(file, aside);
      movedTo = aside;
    } catch {
      // Left in place: still reported, and still refused on every read.
    }
    this.#damaged('blob', file, reason, movedTo);
    throw new LamplighterError(
      ErrorCodes.STORE_DAMAGED,
      `The artifact with sha256 ${digest} is damaged in the store: ${file} ${reason}${movedTo ? `; it was moved to ${movedTo}` : ''}. Deploy the app again to upload it`,
    );
  }

  /** Whether the blob is stored intact (a damaged one is reported, moved aside, and counts as absent). */
  async hasBlob(digest: string): Promise<boolean> {
    const file = this.blobPath(digest);
    // Already hashed and untouched since: no need to read it again.
    const known = this.#verified.get(digest);
    if (known !== undefined && known === (await this.#identity(file).catch(() => undefined))) return true;
    try {
      return (await this.#readBlob(digest)) !== undefined;
    } catch (err) {
      if (err instanceof LamplighterError && err.code === ErrorCodes.STORE_DAMAGED) return false;
      throw err;
    }
  }

  async putBlob(bytes: Uint8Array, digest?: string): Promise<string> {
    const actual = digestOf(bytes);
    if (digest !== undefined && digest !== actual) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Blob digest mismatch: expected ${digest}, got ${actual}`);
    }
    if (!(await this.hasBlob(actual))) await this.#write(this.blobPath(actual), bytes, `artifact sha256 ${actual}`);
    return actual;
  }

  async getBlob(digest: string): Promise<Buffer> {
    const bytes = await this.#readBlob(digest);
    if (!bytes) throw notFound(`No artifact with digest ${digest}`);
    return bytes;
  }

  /** Runs `move` after every earlier pointer move of `app` in this store has settled. */
  #serial<T>(app: string, move: () => Promise<T>): Promise<T> {
    const run = (this.#moves.get(app) ?? Promise.resolve()).then(move, move);
    const settled = run.then(() => undefined, () => undefined);
    this.#moves.set(app, settled);
    void settled.then(() => {
      if (this.#moves.get(app) === settled) this.#moves.delete(app);
    });
    return run;
  }

  /** The number the pointer names now (undefined when there is none or it holds no number). */
  async #pointerNow(app: string): Promise<number | undefined> {
    const pointer = await readPointer(this.#pointerPath(app));
    return pointer.state === 'ok' ? pointer.value : undefined;
  }

  async commit(app: string, input: RevisionInput, options: CommitOptions = {}): Promise<Revision> {
    this.appDir(app);
    return this.#serial(app, async () => {
      for (const [name, digest] of Object.entries(input.artifacts)) {
        if (!(await this.#exists(this.blobPath(digest)))) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Artifact '${name}' (${digest}) has not been uploaded`);
      }
      checkExpected({ app, current: await this.#pointerNow(app), move: { kind: 'deploy' } }, options);
      // Numbered past every revision file, damaged ones included: a damaged file is kept, never overwritten.
      const numbers = await this.#revisionNumbers(app);
      // Read what is there, so damage to the pointer or any revision is reported at deploy too.
      await this.record(app);
      const number = (numbers.at(-1) ?? 0) + 1;
      const revision: Revision = { app, number, createdAt: new Date().toISOString(), manifest: input.manifest, artifacts: input.artifacts, ...(input.appDir ? { appDir: input.appDir } : {}) };
      // The revision first, then the pointer: `current` never names a revision that is not on disk.
      await this.#write(this.#revisionPath(app, number), JSON.stringify(revision, null, 2), `revision ${number} of app '${app}'`);
      await this.#write(this.#pointerPath(app), String(number), `the current pointer of app '${app}'`);
      return revision;
    });
  }

  async #exists(file: string): Promise<boolean> {
    try {
      await stat(file);
      return true;
    } catch {
      return false;
    }
  }

  /** Numbers of every revision file of an app (intact or not), ascending. */
  async #revisionNumbers(app: string): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(path.join(this.appDir(app), 'revisions'));
    } catch {
      return [];
    }
    return names.filter((n) => /^\d+\.json$/.test(n)).map((n) => Number(n.slice(0, -5))).sort((a, b) => a - b);
  }

  /** Reads one revision file; damage is reported. */
  async #readRevision(app: string, number: number): Promise<FileRead<Revision>> {
    const file = this.#revisionPath(app, number);
    const read = await readRevisionFile(file, app, number);
    if (read.state === 'damaged') this.#damaged('revision', file, read.reason);
    return read;
  }

  async revision(app: string, number: number): Promise<Revision> {
    const read = await this.#readRevision(app, number);
    if (read.state === 'ok') return read.value;
    if (read.state === 'missing') throw notFound(`App '${app}' has no revision ${number}`);
    throw new LamplighterError(ErrorCodes.STORE_DAMAGED, `Revision ${number} of app '${app}' is damaged: ${this.#revisionPath(app, number)} ${read.reason}`);
  }

  async record(app: string): Promise<AppRecord | undefined> {
    const file = this.#pointerPath(app);
    const pointer = await readPointer(file);
    // No pointer: nothing was ever committed (a first deploy stopped before its last step).
    if (pointer.state === 'missing') return undefined;
    const revisions = await this.revisions(app);
    if (pointer.state === 'damaged') {
      this.#damaged('pointer', file, pointer.reason);
      return { app, current: undefined, damage: `${file} ${pointer.reason}`, revisions };
    }
    const current = pointer.value;
    if (revisions.some((r) => r.number === current)) return { app, current, damage: undefined, revisions };
    const read = await this.#readRevision(app, current);
    if (read.state === 'ok') return { app, current, damage: undefined, revisions: [...revisions, read.value].sort((a, b) => a.number - b.number) };
    if (read.state === 'missing') {
      const reason = `names revision ${current}, which does not exist`;
      this.#damaged('pointer', file, reason);
      return { app, current, damage: `${file} ${reason}`, revisions };
    }
    return { app, current, damage: `${this.#revisionPath(app, current)} ${read.reason}`, revisions };
  }

  async current(app: string): Promise<Revision | undefined> {
    const record = await this.record(app);
    if (!record || record.damage !== undefined) return undefined;
    return record.revisions.find((r) => r.number === record.current);
  }

  async revisions(app: string): Promise<Revision[]> {
    const out: Revision[] = [];
    for (const n of await this.#revisionNumbers(app)) {
      const read = await this.#readRevision(app, n);
      if (read.state === 'ok') out.push(read.value);
    }
    return out;
  }

  async setCurrent(app: string, number: number, options: CommitOptions = {}): Promise<Revision> {
    this.appDir(app);
    return this.#serial(app, async () => {
      const revision = await this.revision(app, number);
      checkExpected({ app, current: await this.#pointerNow(app), move: { kind: 'rollback', to: number } }, options);
      await this.#write(this.#pointerPath(app), String(number), `the current pointer of app '${app}'`);
      return revision;
    });
  }

  async removeApp(app: string): Promise<void> {
    const dir = this.appDir(app);
    return this.#serial(app, () => this.#removeDir(app, dir));
  }

  async #removeDir(app: string, dir: string): Promise<void> {
    // Rename first, so a crash mid-removal leaves either the whole app or a temp leftover.
    const doomed = path.join(this.dir, 'apps', `${TEMP_PREFIX}removed-${app}-${Date.now()}`);
    try {
      await this.#fs.rename(dir, doomed);
    } catch {
      throw notFound(`No app named '${app}'`);
    }
    await this.#fs.remove(doomed);
  }

  async apps(): Promise<string[]> {
    const names = await readdir(path.join(this.dir, 'apps'));
    const out: string[] = [];
    for (const name of names.filter((n) => !n.startsWith('.')).sort()) {
      if (/^[a-z][a-z0-9-]*$/.test(name) && (await this.#exists(this.#pointerPath(name)))) out.push(name);
    }
    return out;
  }
}
