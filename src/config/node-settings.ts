// A node's settings: one schema, four sources. Each setting has one name in three spellings: the
// file key (`admin_port`), the flag (`--admin-port`) and the environment variable
// (`LAMPLIGHTER_ADMIN_PORT`). Highest first: flags, environment, the config file, defaults.
import { PlatformDefaults } from './defaults.js';
import { parseDuration, parseSize } from './units.js';

/** A setting's value once parsed. */
export type SettingValue = string | number | boolean | string[];

/** The commands a setting belongs to. */
export type NodeCommand = 'up' | 'serve';

/** One setting of a node. */
export interface SettingDef {
  /** The file key, snake_case. */
  readonly key: string;
  /** Help text for the flag and `config show`. */
  readonly help: string;
  /** Placeholder in help (`<port>`); none for a switch. */
  readonly valueName?: string;
  /** Parses a raw value (text from a flag or the environment, or a TOML value); throws saying the expected form. */
  readonly parse: (raw: unknown) => SettingValue;
  /** When nothing sets it; none leaves it unset. */
  readonly default?: SettingValue;
  /** The default as a person writes it, for help (`10MiB` rather than bytes). @default String(default) */
  readonly defaultText?: string;
  /** Applied by a reload without a restart. @default false */
  readonly live?: boolean;
  /** Commands that take it. @default both */
  readonly commands?: readonly NodeCommand[];
  /** Takes several values: the flag repeats, the variable separates them by commas, the file gives a list. @default false */
  readonly list?: boolean;
  /** Older environment variables that also set it, after the main one. @default none */
  readonly envAliases?: readonly string[];
  /** Its value is never shown (`config show` prints `(set)`). @default false */
  readonly secret?: boolean;
  /** Only a flag or the environment sets it (the config file is found through it). @default false */
  readonly notInFile?: boolean;
  /**
   * A switch that is on by default, so its flag turns it off: `--no-<name>`, its help
   * `do not <help>` (such a help starts with a verb). @default false (the flag turns it on)
   */
  readonly negatable?: boolean;
}

/** `admin_port` → `--admin-port`. */
export const flagOf = (key: string): string => `--${key.replace(/_/g, '-')}`;
/** The flag a setting is given by: {@link flagOf}, or `--no-…` for a {@link SettingDef.negatable} switch. */
export const settingFlagOf = (def: SettingDef): string => (def.negatable ? `--no-${flagOf(def.key).slice(2)}` : flagOf(def.key));
/** `admin_port` → `LAMPLIGHTER_ADMIN_PORT`. */
export const envOf = (key: string): string => `LAMPLIGHTER_${key.toUpperCase()}`;

const text = (raw: unknown): string => {
  if (typeof raw === 'string' && raw.trim() !== '') return raw.trim();
  if (typeof raw === 'number') return String(raw);
  throw new Error('expected text');
};

const expect = (form: string, ok: (raw: unknown) => SettingValue | undefined) => (raw: unknown): SettingValue => {
  let value: SettingValue | undefined;
  try {
    value = ok(raw);
  } catch {
    value = undefined;
  }
  if (value === undefined) throw new Error(`expected ${form}, got ${typeof raw === 'string' ? `'${raw}'` : JSON.stringify(raw)}`);
  return value;
};

const portNumber = expect('a port number from 0 to 65535 (0 picks a free one)', (raw) => {
  const n = Number(text(raw));
  return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : undefined;
});
const wholeNumber = (min: number, max: number, example: string) =>
  expect(`a whole number from ${min} to ${max}, like ${example}`, (raw) => {
    const n = Number(text(raw));
    return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
  });
const anyText = expect('text', text);
const duration = (min: number, example: string) =>
  expect(`a duration of at least ${min}ms, like '${example}'`, (raw) => {
    const ms = parseDuration(text(raw));
    return ms !== undefined && ms >= min ? ms : undefined;
  });
const size = expect("a size with a unit, like '10MiB'", (raw) => {
  const bytes = parseSize(text(raw));
  return bytes !== undefined && bytes > 0 ? bytes : undefined;
});
const oneOf = (...choices: string[]) =>
  expect(choices.map((c) => `'${c}'`).join(', ').replace(/, ([^,]+)$/, ' or $1'), (raw) => {
    const t = text(raw).toLowerCase();
    return choices.includes(t) ? t : undefined;
  });
const switchValue = expect('true or false', (raw) => {
  if (typeof raw === 'boolean') return raw;
  const t = text(raw).toLowerCase();
  return ['1', 'true', 'yes', 'on'].includes(t) ? true : ['0', 'false', 'no', 'off'].includes(t) ? false : undefined;
});
const url = expect('an http:// or https:// URL, like http://localhost:4318', (raw) => {
  const t = text(raw);
  return /^https?:\/\/[^\s]+$/.test(t) && URL.canParse(t) ? t : undefined;
});
const files = expect('one or more file paths (a TOML list in the file, commas in a variable)', (raw) => {
  const list = Array.isArray(raw) ? raw.map((v) => text(v)) : text(raw).split(',').map((s) => s.trim()).filter(Boolean);
  return list.length > 0 ? list : undefined;
});
const natsUrls = expect('nats://HOST:PORT, several joined by commas (tls:// for TLS)', (raw) => {
  const list = text(raw).split(',').map((s) => s.trim()).filter(Boolean);
  return list.length > 0 && list.every((u) => /^(nats|tls):\/\/[^\s/]+$/.test(u)) ? list.join(',') : undefined;
});

/** Every setting of a node, in the order `config show` lists them. */
export const NODE_SETTINGS: readonly SettingDef[] = [
  { key: 'data', help: 'data directory: artifacts, revisions, admin token, function logs, and the config file lamplighter.node.toml', valueName: 'dir', parse: anyText, notInFile: true },
  { key: 'port', help: 'gateway port', valueName: 'port', parse: portNumber, default: PlatformDefaults.port },
  { key: 'admin_port', help: 'admin API, /metrics and dashboard port', valueName: 'port', parse: portNumber, default: PlatformDefaults.adminPort },
  { key: 'host', help: 'gateway bind address', valueName: 'addr', parse: anyText, default: PlatformDefaults.host },
  { key: 'admin_host', help: 'admin API bind address (loopback unless told otherwise, whatever host is)', valueName: 'addr', parse: anyText, default: PlatformDefaults.adminHost },
  { key: 'workers', help: 'sandbox worker threads (default: max(2, cores))', valueName: 'n', parse: wholeNumber(1, 256, '4') },
  { key: 'component_workers', help: 'worker threads the component functions of this node run between them (each keeps one at least; default one a core; more for handlers that wait on outbound calls)', valueName: 'n', parse: wholeNumber(1, 1024, '4') },
  { key: 'log_level', help: "the node's log level: fatal, error, warn, info, debug, trace or silent", valueName: 'level', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), live: true, envAliases: ['LAMPLIGHTER_LOG'] },
  { key: 'log_format', help: "the node's own log: json (one object a line) or pretty (for a terminal)", valueName: 'format', parse: oneOf('json', 'pretty'), default: 'json' },
  { key: 'log_max_size', help: "rotate a function's log file in <data>/logs before it passes this size", valueName: 'size', parse: size, default: 10 * 1024 * 1024, defaultText: '10MiB' },
  { key: 'log_max_files', help: 'log files kept per function, the current one included', valueName: 'n', parse: wholeNumber(1, 1000, '5'), default: 5 },
  { key: 'variables_file', help: 'TOML file of name = "value" giving app variables their values, after LAMPLIGHTER_VAR_<NAME>', valueName: 'file', parse: anyText },
  { key: 'otlp_endpoint', help: 'export request traces and function logs over OTLP/HTTP to this base URL, e.g. http://localhost:4318 (or OTEL_EXPORTER_OTLP_ENDPOINT)', valueName: 'url', parse: url, live: true },
  { key: 'limits_timeout', help: 'limits.timeout of a function whose manifest sets none', valueName: 'duration', parse: duration(1, '30s'), default: PlatformDefaults.timeoutMs, defaultText: '30s', live: true },
  { key: 'limits_max_pending', help: 'limits.max_pending of a function whose manifest sets none: requests held while no instance is free', valueName: 'n', parse: wholeNumber(0, 1_000_000, '1000'), default: PlatformDefaults.maxPending, live: true },
  { key: 'limits_cold_start_timeout', help: 'limits.cold_start_timeout of a function whose manifest sets none', valueName: 'duration', parse: duration(1, '10s'), default: PlatformDefaults.coldStartTimeoutMs, defaultText: '10s', live: true },
  { key: 'limits_response_size', help: "limits.response_size of a function whose manifest sets none (a WAGI handler's response)", valueName: 'size', parse: size, default: PlatformDefaults.maxResponseBytes, defaultText: '16MiB', live: true },
  { key: 'limits_body_size', help: 'limits.body_size of a function whose manifest sets none (a request body buffered for WAGI)', valueName: 'size', parse: size, default: PlatformDefaults.maxBodyBytes, defaultText: '16MiB', live: true },
  { key: 'tls_cert', help: 'serve the gateway over HTTPS with this PEM certificate (chain); repeat with tls_key for more, chosen by SNI, the first the default', valueName: 'file', parse: files, list: true },
  { key: 'tls_key', help: 'the PEM private key of each tls_cert, in the same order', valueName: 'file', parse: files, list: true },
  { key: 'http_redirect_port', help: 'with tls_cert, also answer plain HTTP on this port with a 308 to HTTPS', valueName: 'port', parse: portNumber },
  { key: 'admin_tls_cert', help: 'serve the admin API, /metrics and the dashboard over HTTPS with this PEM certificate (with admin_tls_key)', valueName: 'file', parse: anyText },
  { key: 'admin_tls_key', help: 'the PEM private key of admin_tls_cert', valueName: 'file', parse: anyText },
  { key: 'keda_port', help: 'serve the KEDA external-scaler gRPC protocol on this port', valueName: 'port', parse: portNumber, commands: ['serve'] },
  { key: 'cluster', help: 'join a cluster through NATS: nats://HOST:PORT[,nats://…] (tls:// requires TLS); without it the node is embedded', valueName: 'urls', parse: natsUrls, commands: ['serve'] },
  { key: 'node_name', help: "this node's name in the cluster (default: the host name)", valueName: 'name', parse: anyText, commands: ['serve'] },
  { key: 'advertise', help: 'address peers forward requests to (default: host and the gateway port)', valueName: 'host:port', parse: anyText, commands: ['serve'] },
  { key: 'nats_ca', help: "CA certificate that signed the NATS servers' certificates", valueName: 'file', parse: anyText, commands: ['serve'] },
  { key: 'nats_cert', help: 'client certificate for NATS (with nats_key)', valueName: 'file', parse: anyText, commands: ['serve'] },
  { key: 'nats_key', help: 'client key for NATS', valueName: 'file', parse: anyText, commands: ['serve'] },
  { key: 'nats_creds', help: 'NATS credentials file (JWT and seed)', valueName: 'file', parse: anyText, commands: ['serve'] },
  { key: 'nats_token', help: 'NATS token', valueName: 'token', parse: anyText, commands: ['serve'], secret: true },
  { key: 'replicas', help: "copies JetStream keeps of Lamplighter's buckets: 3 on a 3-server NATS cluster", valueName: 'n', parse: wholeNumber(1, 5, '3'), commands: ['serve'], default: 1 },
  { key: 'down_after', help: 'drop a node not heard from for this long, heartbeating every third of it', valueName: 'duration', parse: duration(300, '3s'), commands: ['serve'], default: 3000, defaultText: '3s' },
  { key: 'forward_logs', help: 'in a cluster, also publish function output to NATS subjects lamplighter.logs.<function>', parse: switchValue, commands: ['serve'], default: false, live: true },
  { key: 'function_output', help: "show the functions' output in this terminal (it stays in the logs either way)", parse: switchValue, commands: ['up'], default: true, negatable: true },
  { key: 'watch', help: "rebuild (each function's build command, or `lamplighter build` for a JS/TS handler) and redeploy when a source changes", parse: switchValue, commands: ['up'], default: false },
];

/** The settings a command takes. */
export function settingsOf(command: NodeCommand): SettingDef[] {
  return NODE_SETTINGS.filter((s) => !s.commands || s.commands.includes(command));
}
