// The per-user cache of transpiled components: one verified file per component digest and jco version.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { STATE_REWRITE_VERSION } from './core-state-exports.js';
import type { PreparedComponent } from './prepare-component.js';

/**
 * Bumped when the shape of an entry or the transpile options change, so old entries are not read.
 * 2: the files are stored as raw bytes after a JSON index (1 held them base64 in JSON, which
 * cost a second start about 0.3 s of decoding 13 MB).
 */
const FORMAT = 3;
const MAGIC = `lamplighter-component-cache/${FORMAT}`;

/**
 * The directory transpiled components are cached in: `$XDG_CACHE_HOME/lamplighter`, or
 * `~/.cache/lamplighter` when XDG_CACHE_HOME is unset or not absolute (as the XDG spec says).
 */
export function componentCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.cache');
  return path.join(base, 'lamplighter');
}

let jcoVersion: string | undefined;

/** The installed jco's version: a new transpiler makes new entries. */
export function transpilerVersion(): string {
  if (jcoVersion) return jcoVersion;
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve('@bytecodealliance/jco'));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@bytecodealliance/jco' && pkg.version) return (jcoVersion = pkg.version);
    } catch {
      // No package.json at this level: look further up.
    }
    const up = path.dirname(dir);
    if (up === dir) return (jcoVersion = 'unknown');
    dir = up;
  }
}

/** An entry's index; the files' bytes follow it, in its order. */
interface EntryIndex {
  digest: string;
  jco: string;
  entry: string;
  imports: string[];
  exports: string[];
  oneRequestPerInstance: boolean;
  /** Each file's name and length in bytes. */
  files: Array<[string, number]>;
}

/** Bytes of the index's length, before the index. */
const INDEX_LENGTH_BYTES = 4;

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/** What {@link ComponentCache.read} found. */
export type CacheLookup = { kind: 'hit'; prepared: PreparedComponent } | { kind: 'miss' } | { kind: 'damaged'; reason: string };

/**
 * Transpiled components under one directory, keyed by the component's sha256 and the jco version.
 * An entry is written to a temporary file and renamed into place, so a reader never sees half of
 * one; it carries the sha256 of its body, so a damaged entry is detected and rebuilt, not trusted.
 */
export class ComponentCache {
  readonly #dir: string;
  readonly #jco: string;

  constructor(dir: string, jco = transpilerVersion()) {
    this.#dir = dir;
    this.#jco = jco;
  }

  /** The file holding the entry for `digest`. */
  fileFor(digest: string): string {
    return path.join(this.#dir, `component-${digest}-jco${this.#jco}-v${FORMAT}-r${STATE_REWRITE_VERSION}`);
  }

  /** Reads and verifies the entry for `digest`. */
  async read(digest: string): Promise<CacheLookup> {
    let data: Buffer;
    try {
      data = await readFile(this.fileFor(digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'miss' };
      return { kind: 'damaged', reason: `cannot read it: ${(err as Error).message}` };
    }
    const newline = data.indexOf(0x0a);
    const head = newline > 0 ? data.subarray(0, newline).toString('latin1').split(' ') : [];
    if (head.length !== 2 || head[0] !== MAGIC) return { kind: 'damaged', reason: 'it has no valid header' };
    const body = data.subarray(newline + 1);
    if (createHash('sha256').update(body).digest('hex') !== head[1]) return { kind: 'damaged', reason: 'its checksum does not match its content' };
    const damagedShape: CacheLookup = { kind: 'damaged', reason: 'its content is not a transpiled component for this digest' };
    if (body.length < INDEX_LENGTH_BYTES) return damagedShape;
    const indexEnd = INDEX_LENGTH_BYTES + body.readUInt32BE(0);
    if (indexEnd > body.length) return damagedShape;
    let entry: EntryIndex;
    try {
      entry = JSON.parse(body.subarray(INDEX_LENGTH_BYTES, indexEnd).toString('utf8')) as EntryIndex;
    } catch {
      return { kind: 'damaged', reason: 'its index is not valid JSON' };
    }
    if (
      entry.digest !== digest ||
      entry.jco !== this.#jco ||
      typeof entry.entry !== 'string' ||
      !isStringArray(entry.imports) ||
      !isStringArray(entry.exports) ||
      typeof entry.oneRequestPerInstance !== 'boolean' ||
      !Array.isArray(entry.files) ||
      !entry.files.every((f) => Array.isArray(f) && typeof f[0] === 'string' && Number.isInteger(f[1]) && f[1] >= 0) ||
      !entry.files.some(([name]) => name === entry.entry) ||
      entry.files.reduce((sum, [, length]) => sum + length, indexEnd) !== body.length
    ) {
      return damagedShape;
    }
    // Views into the one buffer read: the bytes are not copied again here.
    const files: Record<string, Uint8Array> = {};
    let at = indexEnd;
    for (const [name, length] of entry.files) {
      files[name] = new Uint8Array(body.buffer, body.byteOffset + at, length);
      at += length;
    }
    return { kind: 'hit', prepared: { files, entry: entry.entry, imports: entry.imports, exports: entry.exports, oneRequestPerInstance: entry.oneRequestPerInstance } };
  }

  /** Stores the entry for `digest`, replacing any (a temp file renamed into place). */
  async write(digest: string, prepared: PreparedComponent): Promise<void> {
    const names = Object.keys(prepared.files);
    const index: EntryIndex = {
      digest,
      jco: this.#jco,
      entry: prepared.entry,
      imports: prepared.imports,
      exports: prepared.exports,
      oneRequestPerInstance: prepared.oneRequestPerInstance,
      files: names.map((name) => [name, prepared.files[name]!.byteLength]),
    };
    const indexBytes = Buffer.from(JSON.stringify(index));
    const indexLength = Buffer.alloc(INDEX_LENGTH_BYTES);
    indexLength.writeUInt32BE(indexBytes.length);
    const body = Buffer.concat([indexLength, indexBytes, ...names.map((name) => prepared.files[name]!)]);
    const head = Buffer.from(`${MAGIC} ${createHash('sha256').update(body).digest('hex')}\n`, 'latin1');
    await mkdir(this.#dir, { recursive: true });
    const target = this.fileFor(digest);
    const temp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(temp, Buffer.concat([head, body]));
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
}
