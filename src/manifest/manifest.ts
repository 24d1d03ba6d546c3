// Parses and validates lamplighter.toml into typed specs; errors name the field path and the value.
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import type { z } from 'zod';
import { LIMIT_DEFAULT_SETTINGS, nearestName, PlatformDefaults, platformLimitDefaults, type DefaultableLimit } from '../config/index.js';
import { ManifestError } from '../errors/index.js';
import type { FileMount } from './function-files.js';
import { SPIN_MANIFEST_FILE, translateSpinManifest } from './spin-manifest.js';
import { IsolationDefaults, KNOWN_FIELDS, manifestSchema, type RawBreakerPartition, type RawManifest } from './schema.js';

/** File name of an app manifest inside its directory. */
export const MANIFEST_FILE = 'lamplighter.toml';

/** The runtimes a function can use. */
export type RuntimeKind = 'wagi' | 'component' | 'process';

/** How a component function's requests share an instance (see FunctionSpec.isolation). */
export type Isolation = 'request' | 'instance';

/** Limits of one function, units resolved (bytes, milliseconds). */
export interface FunctionLimits {
  memory: number;
  timeoutMs: number;
  concurrency: number;
  maxPending: number;
  coldStartTimeoutMs: number;
  responseBytes: number;
  bodyBytes: number;
}

/** Scaling settings of one function, units resolved. */
export interface FunctionScale {
  min: number;
  max: number;
  idleMs: number;
  /** Target in-flight requests per instance (when scaling on concurrency); defaults to limits.concurrency. */
  target: number | undefined;
  /** Target requests per second per instance (when scaling on rate). */
  rate: number | undefined;
  windowMs: number;
}

/** A response served instead of waiting while a function lights up. */
export interface Placeholder {
  status: number;
  body: string;
  contentType: string;
}

/** How a function's requests are split into breaker partitions: by nothing, peer address, a header, or path. */
export type BreakerPartition = RawBreakerPartition;

/** A function's circuit breakers (`[function.breaker]`), units resolved (ms). */
export interface BreakerSpec {
  partition: BreakerPartition;
  /** Failures over requests in the window at which a closed breaker opens (0 < r <= 1). */
  failureRatio: number;
  /** Length of the sliding window the ratio is taken over. */
  windowMs: number;
  /** Requests the window must hold before the ratio is judged. */
  minRequests: number;
  /** Failures in a row that open the breaker whatever the volume; 0 when the rule is off. */
  consecutiveFailures: number;
  /** A call that takes at least this long counts as a failure; undefined when the rule is off. */
  slowCallMs: number | undefined;
  /** Time an open breaker refuses before it lets probes through. */
  openForMs: number;
  /** Probes a half-open breaker lets through; all succeeding closes it, one failing reopens it. */
  halfOpenProbes: number;
  /** Partitions held at most; the least recently used closed ones are forgotten past it. */
  maxKeys: number;
  /**
   * Nodes that must report failures of a key before the cluster opens it for all; undefined: a
   * majority of the nodes reporting the key, and at least 2. One node's failures alone open
   * only its own breaker, unless this is 1.
   */
  quorum: number | undefined;
}

/** One function as the platform runs it. */
export interface FunctionSpec {
  name: string;
  runtime: RuntimeKind;
  /** Path of the artifact, relative to the app directory (wasm runtimes). */
  source: string | undefined;
  /** Program and arguments (process runtime). */
  command: string[] | undefined;
  /** Working directory, relative to the app directory (process runtime). */
  cwd: string | undefined;
  routes: string[];
  /** Send the path without the part its route matched. */
  stripPrefix?: boolean;
  /** Shell command, run in the app directory, that rebuilds its artifact (`up --watch`). */
  build?: string;
  /** Files shipped with the function (preopened read-only as `/`, WAGI and components), each with the function's exclude_files. @default none */
  files?: FileMount[];
  hosts: string[];
  env: Record<string, string>;
  /** Extra argv before the query arguments (WAGI). */
  argv: string[];
  /** HTTP readiness path; undefined means a TCP connect probe (process runtime). */
  ready: string | undefined;
  startupTimeoutMs: number;
  drainTimeoutMs: number;
  allowedOutboundHosts: string[];
  /**
   * What a component instance may keep between requests: nothing ("request", it is restored to
   * its first state after each) or its state ("instance", reused for up to maxReuse requests).
   * The parser always sets it; a spec built in code without it means "request".
   */
  isolation?: Isolation;
  /** Requests one component instance serves under isolation "instance" before it is replaced; IsolationDefaults.maxReuse when unset. */
  maxReuse?: number;
  placeholder: Placeholder | undefined;
  limits: FunctionLimits;
  /**
   * The limits the manifest left unset: they hold the platform's defaults, which a node replaces
   * with its own (`limits_*` settings, changed by a reload). None when the manifest sets them all.
   */
  defaultedLimits?: readonly DefaultableLimit[];
  scale: FunctionScale;
  /** Circuit breakers, when the manifest has `[function.breaker]`; none otherwise. */
  breaker?: BreakerSpec | undefined;
}

/** One app variable (`[variables]`): its value comes from the node's providers, else its default. */
export interface VariableSpec {
  default: string | undefined;
  required: boolean;
  /** Its value never appears in `ls`, `inspect`, logs or errors. */
  secret: boolean;
}

/** An app: a named set of functions deployed together. */
export interface AppManifest {
  name: string;
  version: string | undefined;
  description: string | undefined;
  /** Variables its functions' env values use as `{{ name }}`, by name. */
  variables: Record<string, VariableSpec>;
  functions: FunctionSpec[];
}

/** The manifest's `files` entries as mounts, each carrying the function's `exclude_files` (so that every place that reads a mount leaves them out). */
function fileMounts(files: RawManifest['function'][number]['files'], exclude: string[]): FileMount[] {
  const extra = exclude.length === 0 ? {} : { exclude };
  return files.map((f) => (typeof f === 'string' ? { pattern: f, ...extra } : { ...f, ...extra }));
}

function toSpec(raw: RawManifest['function'][number]): FunctionSpec {
  // A WebAssembly instance is a compiled module that any sandbox worker can run, so it takes a
  // handful of requests at once; a process is an HTTP server that usually takes many.
  const concurrency = raw.limits.concurrency ?? (raw.runtime === 'process' ? PlatformDefaults.processConcurrency : PlatformDefaults.wasmConcurrency);
  // Limits the manifest leaves unset hold the platform's defaults here; a node replaces them with its own.
  const limits = platformLimitDefaults();
  const defaulted: DefaultableLimit[] = [];
  for (const { limit, field } of LIMIT_DEFAULT_SETTINGS) {
    const given = (raw.limits as Record<string, number | undefined>)[field];
    if (given === undefined) defaulted.push(limit);
    else limits[limit] = given;
  }
  return {
    name: raw.name,
    runtime: raw.runtime,
    source: raw.source,
    command: raw.command,
    cwd: raw.cwd,
    routes: raw.routes,
    stripPrefix: raw.strip_prefix,
    ...(raw.build === undefined ? {} : { build: raw.build }),
    ...(raw.files.length === 0 ? {} : { files: fileMounts(raw.files, raw.exclude_files) }),
    hosts: raw.hosts,
    env: raw.env,
    argv: raw.argv ?? [],
    ready: raw.ready,
    startupTimeoutMs: raw.startup_timeout,
    drainTimeoutMs: raw.drain_timeout,
    allowedOutboundHosts: raw.allowed_outbound_hosts,
    isolation: raw.isolation ?? IsolationDefaults.isolation,
    maxReuse: raw.max_reuse ?? IsolationDefaults.maxReuse,
    placeholder: raw.placeholder && {
      status: raw.placeholder.status,
      body: raw.placeholder.body,
      contentType: raw.placeholder.content_type,
    },
    limits: {
      memory: raw.limits.memory,
      concurrency,
      ...limits,
    },
    ...(defaulted.length === 0 ? {} : { defaultedLimits: defaulted }),
    scale: {
      min: raw.scale.min,
      max: raw.scale.max,
      idleMs: raw.scale.idle,
      target: raw.scale.target ?? (raw.scale.rate === undefined ? concurrency : undefined),
      rate: raw.scale.rate,
      windowMs: raw.scale.window,
    },
    breaker: raw.breaker && {
      partition: raw.breaker.partition,
      failureRatio: raw.breaker.failure_ratio,
      windowMs: raw.breaker.window,
      minRequests: raw.breaker.min_requests,
      consecutiveFailures: raw.breaker.consecutive_failures,
      slowCallMs: raw.breaker.slow_call,
      openForMs: raw.breaker.open_for,
      halfOpenProbes: raw.breaker.half_open_probes,
      maxKeys: raw.breaker.max_keys,
      quorum: raw.breaker.quorum,
    },
  };
}

function formatPath(pathParts: ReadonlyArray<PropertyKey>, raw: unknown): string {
  let out = '';
  let node: unknown = raw;
  for (const part of pathParts) {
    if (typeof part === 'number') {
      // Name array entries of functions by their name when there is one: function[hello].
      const entry = Array.isArray(node) ? node[part] : undefined;
      const label = entry && typeof entry === 'object' && typeof (entry as { name?: unknown }).name === 'string'
        ? (entry as { name: string }).name
        : String(part);
      out += `[${label}]`;
    } else {
      out += out === '' ? String(part) : `.${String(part)}`;
    }
    node = node && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[part] : undefined;
  }
  return out;
}

function valueAt(pathParts: ReadonlyArray<PropertyKey>, raw: unknown): unknown {
  let node: unknown = raw;
  for (const part of pathParts) {
    if (!node || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

/** Tables of the manifest as a person writes them, for hints. */
const TABLE_HEADERS: Readonly<Record<keyof typeof KNOWN_FIELDS, string>> = {
  app: 'the top level',
  function: '[[function]]',
  limits: '[function.limits]',
  scale: '[function.scale]',
  placeholder: '[function.placeholder]',
  breaker: '[function.breaker]',
  variable: 'a [variables] entry',
};

/** Which table an issue's path points into. */
function tableAt(pathParts: ReadonlyArray<PropertyKey>): keyof typeof KNOWN_FIELDS | undefined {
  if (pathParts.length === 0) return 'app';
  if (pathParts[0] === 'variables') return pathParts.length === 2 ? 'variable' : undefined;
  if (pathParts[0] !== 'function') return undefined;
  if (pathParts.length === 2) return 'function';
  const sub = pathParts[2];
  return pathParts.length === 3 && (sub === 'limits' || sub === 'scale' || sub === 'placeholder' || sub === 'breaker') ? sub : undefined;
}

/** An unknown field with the nearest known one in its table, or the table it belongs in. */
function describeUnknown(key: string, table: keyof typeof KNOWN_FIELDS | undefined): string {
  if (table) {
    const near = nearestName(key, KNOWN_FIELDS[table]);
    if (near !== undefined) return `'${key}' (did you mean '${near}'?)`;
    for (const [other, fields] of Object.entries(KNOWN_FIELDS) as Array<[keyof typeof KNOWN_FIELDS, readonly string[]]>) {
      if (other === table) continue;
      const elsewhere = nearestName(key, fields);
      if (elsewhere === key) return `'${key}' (it belongs in ${TABLE_HEADERS[other]})`;
      if (elsewhere !== undefined) return `'${key}' (did you mean '${elsewhere}' in ${TABLE_HEADERS[other]}?)`;
    }
    return `'${key}' (known here: ${KNOWN_FIELDS[table].join(', ')})`;
  }
  return `'${key}'`;
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  const where = formatPath(issue.path, raw) || '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const table = tableAt(issue.path);
    return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => describeUnknown(k, table)).join(', ')}`;
  }
  if (/, got /.test(issue.message)) return `${where}: ${issue.message}`;
  const value = valueAt(issue.path, raw);
  const got = value === undefined ? 'nothing' : `${JSON.stringify(value)}`;
  return `${where}: ${issue.message}, got ${got}`;
}

/** Validates an already-parsed TOML document; `origin` names it in errors. */
export function validateManifest(raw: unknown, origin = MANIFEST_FILE): AppManifest {
  const result = manifestSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => describeIssue(issue, raw));
    throw new ManifestError(`Invalid manifest ${origin}: ${lines.join('; ')}`, {
      detail: { issues: result.error.issues.map((i) => ({ path: formatPath(i.path, raw), message: i.message })) },
    });
  }
  const m = result.data;
  const variables: Record<string, VariableSpec> = {};
  for (const [name, v] of Object.entries(m.variables)) variables[name] = { default: v.default, required: v.required, secret: v.secret };
  return { name: m.name, version: m.version, description: m.description, variables, functions: m.function.map(toSpec) };
}

/** Parses manifest text (TOML); `origin` names it in errors. */
export function parseManifest(text: string, origin = MANIFEST_FILE): AppManifest {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    // smol-toml says where, line and column from 1; the message stays on one line.
    const reason = (err instanceof Error ? err.message.split('\n')[0]! : String(err)).replace(/^Invalid TOML document: /, '');
    const { line, column } = err as { line?: number; column?: number };
    const at = line !== undefined ? ` at line ${line}${column !== undefined ? `, column ${column}` : ''}` : '';
    throw new ManifestError(`Invalid manifest ${origin}: not valid TOML${at}: ${reason}`, {
      cause: err,
      detail: line !== undefined ? { line, column } : undefined,
    });
  }
  return validateManifest(raw, origin);
}

/** Reads `<dir>/lamplighter.toml`, or the file itself when `location` names one. */
export async function loadManifest(location: string): Promise<{ manifest: AppManifest; dir: string; text: string }> {
  const file = location.endsWith('.toml') ? location : await manifestIn(location);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ManifestError(`Cannot read manifest ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  // A Spin manifest becomes the lamplighter.toml it means: nodes store and read only that form.
  if (path.basename(file) === SPIN_MANIFEST_FILE || /^\s*spin_manifest_version\s*=/m.test(text)) {
    try {
      text = translateSpinManifest(text, file);
    } catch (err) {
      throw new ManifestError((err as Error).message, { cause: err });
    }
  }
  return { manifest: parseManifest(text, file), dir: path.dirname(path.resolve(file)), text };
}

/** The manifest of an app directory: lamplighter.toml, else Spin's spin.toml. */
async function manifestIn(dir: string): Promise<string> {
  const own = path.join(dir, MANIFEST_FILE);
  const exists = (file: string): Promise<boolean> => access(file).then(() => true, () => false);
  if (await exists(own)) return own;
  const spin = path.join(dir, SPIN_MANIFEST_FILE);
  return (await exists(spin)) ? spin : own;
}
