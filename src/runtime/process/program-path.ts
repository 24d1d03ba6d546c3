// Finds the file a command names, as execvp would, so a wrapper can exec it and errors still name the command.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';

async function _executableFile(file: string): Promise<'ok' | 'ENOENT' | 'EACCES'> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) return info ? 'EACCES' : 'ENOENT';
  return (await access(file, constants.X_OK).then(() => true, () => false)) ? 'ok' : 'EACCES';
}

function _errno(code: 'ENOENT' | 'EACCES', program: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: cannot run '${program}'`);
  err.code = code;
  err.path = program;
  return err;
}

/** Where {@link resolveProgram} looks. */
export interface ResolveProgramOptions {
  /** Directory the program will run in; relative names and PATH entries are taken against it. */
  cwd: string;
  /** The PATH the program will get. @default '/usr/local/bin:/usr/bin:/bin' (execvp's own default) */
  pathEnv?: string | undefined;
}

/**
 * The absolute path of the file `program` runs: a name with a slash is taken relative to `cwd`,
 * anything else is looked for in each directory of `pathEnv` in turn (an empty entry meaning
 * `cwd`). Rejects with an errno-style error, code ENOENT or EACCES, as spawning it would.
 */
export async function resolveProgram(program: string, options: ResolveProgramOptions): Promise<string> {
  const { cwd, pathEnv } = options;
  if (program.includes('/')) {
    const file = path.resolve(cwd, program);
    const found = await _executableFile(file);
    if (found === 'ok') return file;
    throw _errno(found, program);
  }
  let denied = false;
  for (const dir of (pathEnv ?? '/usr/local/bin:/usr/bin:/bin').split(path.delimiter)) {
    const file = path.resolve(cwd, dir, program);
    const found = await _executableFile(file);
    if (found === 'ok') return file;
    if (found === 'EACCES') denied = true;
  }
  throw _errno(denied ? 'EACCES' : 'ENOENT', program);
}
