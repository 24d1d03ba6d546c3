// Files shipped with a function (`files = ["static/**", { source = "assets", destination = "/assets" }]`):
// which app files they name, and where each appears to the function. The same rules run where
// the app is read (to upload the files) and on each node (to lay them out), so both agree.
import { readdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * One `files` entry: a glob of app files kept at their paths, or a file or directory mounted
 * elsewhere. `exclude` holds globs of app files left out even when the entry names them (the
 * function's `exclude_files`, Spin's field of that name).
 */
export type FileMount = ({ pattern: string } | { source: string; destination: string }) & { exclude?: readonly string[] };

/** A glob as a regular expression: `**` any path, `*` any name part, `?` one character. */
function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      // `**/` matches any number of directories, a final `**` anything below.
      if (pattern[i + 2] === '/') {
        out += '(?:.*/)?';
        i += 2;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/** Where each shipped file appears to the function: guest path → app-relative path. Throws when two land on one path. */
export function fileTargets(mounts: readonly FileMount[], appFiles: readonly string[]): Map<string, string> {
  const targets = new Map<string, string>();
  const place = (guest: string, rel: string): void => {
    const other = targets.get(guest);
    if (other !== undefined && other !== rel) throw new Error(`files: '${rel}' and '${other}' would both be ${guest}`);
    targets.set(guest, rel);
  };
  for (const mount of mounts) {
    const excluded = (mount.exclude ?? []).map(globToRegExp);
    const kept = excluded.length === 0 ? appFiles : appFiles.filter((rel) => !excluded.some((re) => re.test(rel)));
    if ('pattern' in mount) {
      const re = globToRegExp(mount.pattern);
      for (const rel of kept) if (re.test(rel)) place(`/${rel}`, rel);
    } else {
      const source = mount.source.replace(/\/+$/, '');
      const destination = mount.destination.replace(/\/+$/, '') || '/';
      for (const rel of kept) {
        if (rel === source) place(destination, rel);
        else if (rel.startsWith(`${source}/`)) place(path.posix.join(destination, rel.slice(source.length + 1)), rel);
      }
    }
  }
  return targets;
}

/** The directory a mount's files can only be under (the glob's part before its first wildcard). */
function baseOf(mount: FileMount): string {
  if (!('pattern' in mount)) return mount.source.replace(/\/+$/, '');
  const parts = mount.pattern.split('/');
  const fixed: string[] = [];
  for (const part of parts.slice(0, -1)) {
    if (/[*?]/.test(part)) break;
    fixed.push(part);
  }
  return fixed.join('/');
}

/** Regular files under `dir` (app-relative, `/`-separated), symbolic links left out. */
async function walk(appDir: string, rel: string, out: Set<string>): Promise<void> {
  let entries;
  try {
    entries = await readdir(path.join(appDir, rel), { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') {
      out.add(rel);
      return;
    }
    if (code === 'ENOENT') return;
    throw err;
  }
  for (const entry of entries) {
    const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) await walk(appDir, child, out);
    else if (entry.isFile()) out.add(child);
  }
}

/**
 * The app files `mounts` name (app-relative paths), found under `appDir`. A mount that names
 * nothing is refused: a typo would otherwise ship an empty directory.
 */
export async function collectFunctionFiles(appDir: string, fn: string, mounts: readonly FileMount[]): Promise<string[]> {
  const found = new Set<string>();
  for (const mount of mounts) {
    const candidates = new Set<string>();
    await walk(appDir, baseOf(mount), candidates);
    const matched = fileTargets([mount], [...candidates]);
    if (matched.size === 0) {
      const what = 'pattern' in mount ? `'${mount.pattern}'` : `{ source = '${mount.source}' }`;
      const unless = mount.exclude?.length ? ` that exclude_files leaves in` : '';
      throw new Error(`function '${fn}': files entry ${what} names no file${unless} under ${appDir}`);
    }
    for (const rel of matched.values()) found.add(rel);
  }
  return [...found].sort();
}
