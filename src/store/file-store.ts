// The embedded artifact store: content-addressed blobs and immutable app revisions under a data directory.
//
// Layout:  blobs/sha256/<2 hex>/<64 hex>         artifact bytes
//          apps/<app>/revisions/<n>.json          one immutable revision each
//          apps/<app>/current                     the revision number being served
// A deploy writes its blobs, then its revision file, then flips `current`; each step is an atomic
// rename, so a crash at any point leaves the previous revision current and complete.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { removeTempLeftovers, TEMP_PREFIX, writeFileAtomic } from './atomic-file.js';

/** One committed revision of an app. */
export interface Revision {
  app: string;
  number: number;
  /** ISO time of the commit. */
  createdAt: string;
  /** The manifest text as deployed. */
  manifest: string;
  /** Artifact path (as named in the manifest) → sha256 digest. */
  artifacts: Record<string, string>;
  /** Directory the app was deployed from; process functions run there. */
  appDir?: string;
}

/** What a deploy commits; the store assigns the number and time. */
export type RevisionInput = Pick<Revision, 'manifest' | 'artifacts' | 'appDir'>;

/** Blobs and revisions, embedded or clustered. */
export interface ArtifactStore {
  hasBlob(digest: string): Promise<boolean>;
  /** Stores bytes; when `digest` is given it must match. Resolves with the digest. */
  putBlob(bytes: Uint8Array, digest?: string): Promise<string>;
  getBlob(digest: string): Promise<Buffer>;
  commit(app: string, input: RevisionInput): Promise<Revision>;
  current(app: string): Promise<Revision | undefined>;
  revisions(app: string): Promise<Revision[]>;
  setCurrent(app: string, number: number): Promise<Revision>;
  removeApp(app: string): Promise<void>;
  apps(): Promise<string[]>;
  /** Bytes cached under a derived key (e.g. a transpiled component), or undefined. */
  cacheGet(key: string): Promise<Buffer | undefined>;
  /** Caches bytes under a derived key: stored as a blob, the key pointing at its digest. */
  cachePut(key: string, bytes: Uint8Array): Promise<void>;
}

/** sha256 hex digest of bytes. */
export function digestOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const DIGEST = /^[0-9a-f]{64}$/;

function notFound(message: string): LamplighterError {
  return new LamplighterError(ErrorCodes.NOT_FOUND, message);
}

/** {@link ArtifactStore} on the local file system. */
export class FileStore implements ArtifactStore {
  private constructor(readonly dir: string) {}

  /** Opens (creating) a store under `dir`, clearing crash leftovers. */
  static async open(dir: string): Promise<FileStore> {
    await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    await mkdir(path.join(dir, 'apps'), { recursive: true });
    await removeTempLeftovers(dir);
    return new FileStore(path.resolve(dir));
  }

  private blobPath(digest: string): string {
    if (!DIGEST.test(digest)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `'${digest}' is not a sha256 hex digest`);
    return path.join(this.dir, 'blobs', 'sha256', digest.slice(0, 2), digest);
  }

  private appDir(app: string): string {
    if (!/^[a-z][a-z0-9-]*$/.test(app)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `'${app}' is not an app name`);
    return path.join(this.dir, 'apps', app);
  }

  async hasBlob(digest: string): Promise<boolean> {
    try {
      await stat(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  async putBlob(bytes: Uint8Array, digest?: string): Promise<string> {
    const actual = digestOf(bytes);
    if (digest !== undefined && digest !== actual) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Blob digest mismatch: expected ${digest}, got ${actual}`);
    }
    if (!(await this.hasBlob(actual))) await writeFileAtomic(this.blobPath(actual), bytes);
    return actual;
  }

  async getBlob(digest: string): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch {
      throw notFound(`No artifact with digest ${digest}`);
    }
  }

  async commit(app: string, input: RevisionInput): Promise<Revision> {
    for (const [name, digest] of Object.entries(input.artifacts)) {
      if (!(await this.hasBlob(digest))) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Artifact '${name}' (${digest}) has not been uploaded`);
    }
    const existing = await this.revisions(app);
    const number = existing.reduce((max, r) => Math.max(max, r.number), 0) + 1;
    const revision: Revision = { app, number, createdAt: new Date().toISOString(), manifest: input.manifest, artifacts: input.artifacts, ...(input.appDir ? { appDir: input.appDir } : {}) };
    const dir = this.appDir(app);
    await writeFileAtomic(path.join(dir, 'revisions', `${number}.json`), JSON.stringify(revision, null, 2));
    await writeFileAtomic(path.join(dir, 'current'), String(number));
    return revision;
  }

  private async readRevision(app: string, number: number): Promise<Revision | undefined> {
    try {
      return JSON.parse(await readFile(path.join(this.appDir(app), 'revisions', `${number}.json`), 'utf8')) as Revision;
    } catch {
      return undefined;
    }
  }

  async current(app: string): Promise<Revision | undefined> {
    let text: string;
    try {
      text = await readFile(path.join(this.appDir(app), 'current'), 'utf8');
    } catch {
      return undefined;
    }
    return this.readRevision(app, Number(text.trim()));
  }

  async revisions(app: string): Promise<Revision[]> {
    let names: string[];
    try {
      names = await readdir(path.join(this.appDir(app), 'revisions'));
    } catch {
      return [];
    }
    const numbers = names.filter((n) => /^\d+\.json$/.test(n)).map((n) => Number(n.slice(0, -5))).sort((a, b) => a - b);
    const out: Revision[] = [];
    for (const n of numbers) {
      const r = await this.readRevision(app, n);
      if (r) out.push(r);
    }
    return out;
  }

  async setCurrent(app: string, number: number): Promise<Revision> {
    const revision = await this.readRevision(app, number);
    if (!revision) throw notFound(`App '${app}' has no revision ${number}`);
    await writeFileAtomic(path.join(this.appDir(app), 'current'), String(number));
    return revision;
  }

  async removeApp(app: string): Promise<void> {
    const dir = this.appDir(app);
    // Rename first, so a crash mid-removal leaves either the whole app or a temp leftover.
    const doomed = path.join(this.dir, 'apps', `${TEMP_PREFIX}removed-${app}-${Date.now()}`);
    try {
      await rename(dir, doomed);
    } catch {
      throw notFound(`No app named '${app}'`);
    }
    await rm(doomed, { recursive: true, force: true });
  }

  private cachePath(key: string): string {
    if (!/^[a-z0-9][a-z0-9.@_-]{0,200}$/.test(key)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `'${key}' is not a cache key`);
    return path.join(this.dir, 'cache', key);
  }

  async cacheGet(key: string): Promise<Buffer | undefined> {
    try {
      const digest = (await readFile(this.cachePath(key), 'utf8')).trim();
      return await this.getBlob(digest);
    } catch {
      return undefined;
    }
  }

  async cachePut(key: string, bytes: Uint8Array): Promise<void> {
    const digest = await this.putBlob(bytes);
    await writeFileAtomic(this.cachePath(key), digest);
  }

  async apps(): Promise<string[]> {
    const names = await readdir(path.join(this.dir, 'apps'));
    const out: string[] = [];
    for (const name of names.filter((n) => !n.startsWith('.')).sort()) {
      if (await this.current(name)) out.push(name);
    }
    return out;
  }
}
