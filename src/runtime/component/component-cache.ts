// The per-user cache of transpiled components: one verified file per component digest and jco version.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import type { PreparedComponent } from './prepare-component.js';

/** Bumped when the shape of an entry or the transpile options change, so old entries are not read. */
const FORMAT = 1;
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

interface Entry {
  digest: string;
  jco: string;
  entry: string;
  imports: string[];
  exports: string[];
  files: Record<string, string>;
}

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
    return path.join(this.#dir, `component-${digest}-jco${this.#jco}-v${FORMAT}`);
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
    let entry: Entry;
    try {
      entry = JSON.parse(body.toString('utf8')) as Entry;
    } catch {
      return { kind: 'damaged', reason: 'its content is not valid JSON' };
    }
    if (
      entry.digest !== digest ||
      entry.jco !== this.#jco ||
      typeof entry.entry !== 'string' ||
      !isStringArray(entry.imports) ||
      !isStringArray(entry.exports) ||
      typeof entry.files !== 'object' ||
      entry.files === null ||
      typeof entry.files[entry.entry] !== 'string'
    ) {
      return { kind: 'damaged', reason: 'its content is not a transpiled component for this digest' };
    }
    const files: Record<string, Uint8Array> = {};
    for (const [name, base64] of Object.entries(entry.files)) files[name] = new Uint8Array(Buffer.from(base64, 'base64'));
    return { kind: 'hit', prepared: { files, entry: entry.entry, imports: entry.imports, exports: entry.exports } };
  }

  /** Stores the entry for `digest`, replacing any (a temp file renamed into place). */
  async write(digest: string, prepared: PreparedComponent): Promise<void> {
    const files: Record<string, string> = {};
    for (const [name, data] of Object.entries(prepared.files)) files[name] = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
    const entry: Entry = { digest, jco: this.#jco, entry: prepared.entry, imports: prepared.imports, exports: prepared.exports, files };
    const body = Buffer.from(JSON.stringify(entry));
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
