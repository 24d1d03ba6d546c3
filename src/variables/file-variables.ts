// Variable values from a TOML file of `name = "value"` lines (`--variables-file`).
import { readFile, stat } from 'node:fs/promises';
import { parse as parseToml } from 'smol-toml';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { VARIABLE_NAME } from '../manifest/index.js';
import type { VariableProvider } from './variable-provider.js';

/**
 * Reads the file again whenever it changed (by mtime and size), so a deploy after an edit sees the
 * new values without a restart. A file that is missing, not TOML, or holds something other than
 * string values for variable names is refused with what to fix; values never appear in the message.
 */
export class FileVariables implements VariableProvider {
  #values: Map<string, string> | undefined;
  #stamp = '';

  constructor(readonly path: string) {}

  describe(name: string): string {
    return `'${name}' in ${this.path}`;
  }

  async get(name: string): Promise<string | undefined> {
    return (await this.#load()).get(name);
  }

  async #load(): Promise<Map<string, string>> {
    let stamp: string;
    try {
      const s = await stat(this.path);
      stamp = `${s.mtimeMs}:${s.size}`;
    } catch (err) {
      throw new LamplighterError(ErrorCodes.MANIFEST_INVALID, `Cannot read the variables file ${this.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; fix --variables-file`, { cause: err });
    }
    if (this.#values && stamp === this.#stamp) return this.#values;
    let parsed: Record<string, unknown>;
    try {
      parsed = parseToml(await readFile(this.path, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      // smol-toml's message quotes the offending line, which may hold a secret: keep only where.
      const line = (err as { line?: unknown }).line;
      const where = typeof line === 'number' ? ` (line ${line})` : '';
      throw new LamplighterError(ErrorCodes.MANIFEST_INVALID, `The variables file ${this.path} is not valid TOML${where}; write one name = "value" per line`);
    }
    const values = new Map<string, string>();
    for (const [name, value] of Object.entries(parsed)) {
      if (!VARIABLE_NAME.test(name)) {
        throw new LamplighterError(ErrorCodes.MANIFEST_INVALID, `The variables file ${this.path} has '${name}', which is not a variable name (lower-case letters, digits and underscores, starting with a letter)`);
      }
      if (typeof value !== 'string') {
        throw new LamplighterError(ErrorCodes.MANIFEST_INVALID, `The variables file ${this.path} gives '${name}' a ${Array.isArray(value) ? 'list' : typeof value}; values are strings: ${name} = "…"`);
      }
      values.set(name, value);
    }
    this.#values = values;
    this.#stamp = stamp;
    return values;
  }
}
