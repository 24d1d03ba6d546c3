// Resolving a node's settings from its four sources, with where each value came from.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { nearestName } from './nearest-name.js';
import { envOf, settingFlagOf, settingsOf, type NodeCommand, type SettingDef, type SettingValue } from './node-settings.js';

/** Where a value came from, highest first. */
export type SettingSource = 'flag' | 'environment' | 'file' | 'default';

/** One setting's effective value. */
export interface ResolvedSetting {
  key: string;
  value: SettingValue | undefined;
  source: SettingSource | undefined;
  /** The flag, variable or file (and key) that set it, for messages. */
  from: string | undefined;
  live: boolean;
  secret: boolean;
}

/** A node's effective settings. */
export interface NodeConfig {
  command: NodeCommand;
  /** The config file read, if any. */
  file: string | undefined;
  settings: ReadonlyMap<string, ResolvedSetting>;
}

/** The config file a node reads from its data directory when `--config` names none. */
export const NODE_CONFIG_FILE = 'lamplighter.node.toml';

/** What a resolution starts from. */
export interface ConfigInputs {
  command: NodeCommand;
  /** Values of the flags given on the command line, by key (only those given). */
  flags: Readonly<Record<string, unknown>>;
  env?: NodeJS.ProcessEnv;
  /** `--config FILE`; without it `<data>/lamplighter.node.toml` when that exists. */
  configFile?: string;
  /** Data directory when no flag or variable names one (up's temporary one). */
  defaultData?: string;
}

function invalid(message: string): LamplighterError {
  return new LamplighterError(ErrorCodes.BAD_REQUEST, message);
}

/** Reads a config file's table; a missing explicit one, bad TOML or an unknown key is refused with where. */
async function readConfigFile(file: string, command: NodeCommand, explicit: boolean): Promise<Record<string, unknown> | undefined> {
  let body: string;
  try {
    body = await readFile(file, 'utf8');
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw invalid(`Cannot read the config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let table: Record<string, unknown>;
  try {
    table = parseToml(body) as Record<string, unknown>;
  } catch (err) {
    const line = (err as { line?: unknown }).line;
    throw invalid(`The config file ${file} is not valid TOML${typeof line === 'number' ? ` (line ${line})` : ''}: ${(err as Error).message.split('\n')[0]}`);
  }
  const known = settingsOf(command).filter((s) => !s.notInFile).map((s) => s.key);
  for (const key of Object.keys(table)) {
    if (known.includes(key)) continue;
    const near = nearestName(key, known);
    const everywhere = settingsOf(command === 'up' ? 'serve' : 'up').some((s) => s.key === key);
    const hint = near ? ` (did you mean '${near}'?)` : everywhere ? ` (it applies to \`lamplighter ${command === 'up' ? 'serve' : 'up'}\` only)` : ` (known keys: ${known.join(', ')})`;
    throw invalid(`The config file ${file} has an unknown key '${key}'${hint}`);
  }
  return table;
}

function parseFrom(def: SettingDef, raw: unknown, from: string): SettingValue {
  try {
    return def.parse(raw);
  } catch (err) {
    throw invalid(`Invalid ${def.key} from ${from}: ${(err as Error).message}`);
  }
}

/**
 * The effective settings of a node: each from its flag, else its environment variable, else the
 * config file, else its default. An invalid value is refused naming its source, key and form.
 */
export async function resolveNodeConfig(inputs: ConfigInputs): Promise<NodeConfig> {
  const env = inputs.env ?? process.env;
  const defs = settingsOf(inputs.command);
  const settings = new Map<string, ResolvedSetting>();
  const set = (def: SettingDef, value: SettingValue | undefined, source: SettingSource | undefined, from: string | undefined): void => {
    settings.set(def.key, { key: def.key, value, source, from, live: def.live === true, secret: def.secret === true });
  };
  const fromFlagOrEnv = (def: SettingDef): boolean => {
    if (inputs.flags[def.key] !== undefined) {
      set(def, parseFrom(def, inputs.flags[def.key], settingFlagOf(def)), 'flag', settingFlagOf(def));
      return true;
    }
    for (const name of [envOf(def.key), ...(def.envAliases ?? [])]) {
      const raw = env[name];
      if (raw !== undefined && raw !== '') {
        set(def, parseFrom(def, raw, `environment variable ${name}`), 'environment', name);
        return true;
      }
    }
    return false;
  };
  // The data directory comes first: the config file is found in it.
  const dataDef = defs.find((d) => d.key === 'data')!;
  if (!fromFlagOrEnv(dataDef)) set(dataDef, inputs.defaultData, inputs.defaultData === undefined ? undefined : 'default', undefined);
  const data = settings.get('data')!.value as string | undefined;
  const explicit = inputs.configFile ?? env.LAMPLIGHTER_CONFIG;
  const file = explicit ?? (data === undefined ? undefined : path.join(data, NODE_CONFIG_FILE));
  const table = file === undefined ? undefined : await readConfigFile(file, inputs.command, explicit !== undefined);
  for (const def of defs) {
    if (def.key === 'data' || fromFlagOrEnv(def)) continue;
    if (table && table[def.key] !== undefined) {
      const from = `${file} (${def.key})`;
      set(def, parseFrom(def, table[def.key], from), 'file', from);
    } else {
      set(def, def.default, def.default === undefined ? undefined : 'default', undefined);
    }
  }
  return { command: inputs.command, file: table ? file : undefined, settings };
}

/** A setting's value, typed by the caller (the schema says what each key holds). */
export function settingValue<T extends SettingValue>(config: NodeConfig, key: string): T | undefined {
  return config.settings.get(key)?.value as T | undefined;
}

/** The keys whose values differ between two resolutions, split into those a reload applies and those needing a restart. */
export function configChanges(before: NodeConfig, after: NodeConfig): { live: string[]; restart: string[] } {
  const live: string[] = [];
  const restart: string[] = [];
  for (const [key, now] of after.settings) {
    const was = before.settings.get(key);
    if (JSON.stringify(was?.value) === JSON.stringify(now.value)) continue;
    (now.live ? live : restart).push(key);
  }
  return { live, restart };
}

/** The settings as `config show` and `GET /v1/config` give them: secrets as `(set)`. */
export function describeConfig(config: NodeConfig): { file: string | null; settings: Array<{ key: string; value: SettingValue | null; source: SettingSource | null; from: string | null; live: boolean }> } {
  return {
    file: config.file ?? null,
    settings: [...config.settings.values()].map((s) => ({
      key: s.key,
      value: s.value === undefined ? null : s.secret ? '(set)' : s.value,
      source: s.source ?? null,
      from: s.from ?? null,
      live: s.live,
    })),
  };
}
