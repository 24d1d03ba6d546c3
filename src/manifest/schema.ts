// The lamplighter.toml schema: validates raw TOML and turns it into the typed FunctionSpec the rest trusts.
import { z } from 'zod';
import { parseDuration, parseSize, PlatformDefaults } from '../config/index.js';
import { referencedVariables, VARIABLE_NAME } from './env-template.js';
import { parseRoute } from './route-pattern.js';

const NAME = /^[a-z][a-z0-9-]{0,62}$/;

/** How a rejected value reads in a message: strings quoted, numbers and the rest as TOML writes them. */
function shown(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
}

// Sizes and durations are strings with a unit; a bare number is refused rather than guessed at.
const size = (field: string) =>
  z.unknown().transform((value, ctx) => {
    const bytes = typeof value === 'string' ? parseSize(value) : undefined;
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `${field} must be a size with a unit like '64MiB' or '512KiB', got ${shown(value)}` });
      return z.NEVER;
    }
    return bytes;
  });

const duration = (field: string) =>
  z.unknown().transform((value, ctx) => {
    const ms = typeof value === 'string' ? parseDuration(value) : undefined;
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `${field} must be a duration with a unit like '10s' or '500ms', got ${shown(value)}` });
      return z.NEVER;
    }
    return ms;
  });

/** A path inside the app directory: relative, without `..`. */
const safeRelative = (p: string): boolean => !p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\\');

const route = z.string().superRefine((r, ctx) => {
  try {
    parseRoute(r);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `${(err as Error).message} (routes are exact like '/users/me', take parameters like '/users/:id', or end in a wildcard like '/files/...')` });
  }
});

// The gateway matches the Host header without its port, so a pattern with a port could never match.
const host = z.string().refine((h) => h === '*' || /^(\*\.)?[a-zA-Z0-9.-]+$/.test(h), {
  message: "a host must be '*', a name, or '*.' followed by a name, without a port (hosts match on any port)",
});

const limitsSchema = z
  .object({
    memory: size('limits.memory').default(PlatformDefaults.memory),
    // Left unset, these five take the node's defaults (its limits_* settings), which a reload changes.
    timeout: duration('limits.timeout').optional(),
    concurrency: z.number().int().min(1).max(10_000).optional(),
    max_pending: z.number().int().min(0).max(1_000_000).optional(),
    cold_start_timeout: duration('limits.cold_start_timeout').optional(),
    response_size: size('limits.response_size').optional(),
    body_size: size('limits.body_size').optional(),
  })
  .strict()
  .refine((l) => l.memory <= PlatformDefaults.maxMemory, {
    message: 'limits.memory must be at most 4GiB',
    path: ['memory'],
  });

const scaleSchema = z
  .object({
    min: z.number().int().min(0).default(PlatformDefaults.scaleMin),
    max: z.number().int().min(1).max(10_000).default(PlatformDefaults.scaleMax),
    idle: duration('scale.idle').default(PlatformDefaults.idleMs),
    target: z.number().positive().optional(),
    rate: z.number().positive().optional(),
    window: duration('scale.window').default(PlatformDefaults.windowMs),
  })
  .strict()
  .refine((s) => s.min <= s.max, { message: 'scale.min must not exceed scale.max', path: ['min'] })
  .refine((s) => s.target === undefined || s.rate === undefined, {
    message: 'set scale.target or scale.rate, not both',
    path: ['rate'],
  });

const placeholderSchema = z
  .object({
    status: z.number().int().min(200).max(599).default(503),
    body: z.string().default(''),
    content_type: z.string().default('text/plain; charset=utf-8'),
  })
  .strict();

/** Defaults of `[function.breaker]` once the table is present; without it a function has no breaker. */
export const BreakerDefaults = {
  /** One breaker for the whole function. */
  partition: 'none',
  /** Open once half the requests in the window failed... */
  failureRatio: 0.5,
  /** ...over the last 10 s... */
  windowMs: 10_000,
  /** ...and at least 20 requests were seen in it. */
  minRequests: 20,
  /** Or after this many failures in a row, whatever the volume (0 turns the rule off). */
  consecutiveFailures: 10,
  /** Open this long before probes are let through. */
  openForMs: 30_000,
  /** Probes half-open lets through; all must succeed to close. */
  halfOpenProbes: 3,
  /** Partitions held per function; least recently used closed ones are forgotten past it. */
  maxKeys: 10_000,
} as const;

// An HTTP header name (RFC 9110 token), matched lower-cased as the gateway stores headers.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** How requests are split into partitions, each with a breaker of its own. */
export type RawBreakerPartition = { kind: 'none' } | { kind: 'client' } | { kind: 'path' } | { kind: 'header'; name: string };

const partition = z.unknown().transform((value, ctx): RawBreakerPartition => {
  if (value === 'none' || value === 'client' || value === 'path') return { kind: value };
  if (typeof value === 'string' && value.startsWith('header:')) {
    const name = value.slice('header:'.length).trim().toLowerCase();
    if (HEADER_NAME.test(name)) return { kind: 'header', name };
  }
  ctx.addIssue({
    code: 'custom',
    message: `breaker.partition must be "none", "client" (the peer address), "path" or "header:NAME" (like "header:x-tenant"), got ${shown(value)}`,
  });
  return z.NEVER;
});

const count = (field: string, min: number, max: number, what: string) =>
  z.number({ error: `breaker.${field} must be a whole number ${what}` }).int(`breaker.${field} must be a whole number ${what}`).min(min, `breaker.${field} must be a whole number ${what}`).max(max, `breaker.${field} must be a whole number ${what}`);

const breakerSchema = z
  .object({
    partition: partition.default(() => ({ kind: BreakerDefaults.partition })),
    failure_ratio: z
      .number({ error: 'breaker.failure_ratio must be a number above 0 and at most 1, like 0.5 (half the requests)' })
      .gt(0, 'breaker.failure_ratio must be a number above 0 and at most 1, like 0.5 (half the requests)')
      .max(1, 'breaker.failure_ratio must be a number above 0 and at most 1, like 0.5 (half the requests)')
      .default(BreakerDefaults.failureRatio),
    window: duration('breaker.window').default(BreakerDefaults.windowMs),
    min_requests: count('min_requests', 1, 1_000_000, 'from 1 to 1000000').default(BreakerDefaults.minRequests),
    consecutive_failures: count('consecutive_failures', 0, 1_000_000, 'from 0 (off) to 1000000').default(BreakerDefaults.consecutiveFailures),
    slow_call: duration('breaker.slow_call').optional(),
    open_for: duration('breaker.open_for').default(BreakerDefaults.openForMs),
    half_open_probes: count('half_open_probes', 1, 1000, 'from 1 to 1000').default(BreakerDefaults.halfOpenProbes),
    max_keys: count('max_keys', 1, 1_000_000, 'from 1 to 1000000').default(BreakerDefaults.maxKeys),
    quorum: count('quorum', 1, 1000, 'of nodes from 1 to 1000').optional(),
  })
  .strict()
  // The window is kept in ten buckets; below 100 ms a bucket would be shorter than a timer tick.
  .refine((b) => b.window >= 100, { message: "breaker.window must be at least '100ms'", path: ['window'] })
  .refine((b) => b.open_for >= 1, { message: "breaker.open_for must be at least '1ms'", path: ['open_for'] })
  .refine((b) => b.slow_call === undefined || b.slow_call >= 1, { message: "breaker.slow_call must be at least '1ms'", path: ['slow_call'] });

/** Defaults of a component function's instance isolation (`isolation`, `max_reuse`). */
export const IsolationDefaults = {
  /** A component instance restored to its first state before every request. */
  isolation: 'request',
  /** Under `isolation = "instance"`, requests one instance serves before it is replaced. */
  maxReuse: 128,
} as const;

const isolation = z.enum(['request', 'instance'], {
  error: (issue) => `isolation must be "request" (a component instance as new for every request) or "instance" (one instance reused for up to max_reuse requests), got ${shown(issue.input)}`,
});

const maxReuse = z
  .number({ error: (issue) => `max_reuse must be a whole number from 1 to 1000000, got ${shown(issue.input)}` })
  .int({ error: (issue) => `max_reuse must be a whole number from 1 to 1000000, got ${shown(issue.input)}` })
  .min(1, { error: (issue) => `max_reuse must be a whole number from 1 to 1000000, got ${shown(issue.input)}` })
  .max(1_000_000, { error: (issue) => `max_reuse must be a whole number from 1 to 1000000, got ${shown(issue.input)}` });

const functionSchema = z
  .object({
    name: z.string().regex(NAME, 'a function name must be lower-case letters, digits and dashes, starting with a letter'),
    runtime: z.enum(['wagi', 'component', 'process']).default('wagi'),
    source: z.string().min(1).optional(),
    command: z.array(z.string().min(1)).min(1).optional(),
    cwd: z.string().optional(),
    routes: z.array(route).min(1),
    strip_prefix: z.boolean({ error: 'strip_prefix must be true or false' }).default(false),
    build: z.string().min(1, 'build must be a shell command like "make handler.wasm"').optional(),
    files: z
      .array(
        z.union([
          z.string().min(1).refine(safeRelative, { message: 'a files pattern is a path inside the app directory, like "static/**", without ".." or a leading /' }),
          z
            .object({
              source: z.string().min(1).refine(safeRelative, { message: 'files source is a file or directory inside the app directory, without ".." or a leading /' }),
              destination: z.string().refine((d) => d.startsWith('/') && !d.split('/').includes('..'), { message: 'files destination is an absolute path the function sees, like "/assets"' }),
            })
            .strict(),
        ]),
        { error: 'files must be a list of patterns ("static/**") and { source, destination } tables' },
      )
      .default([]),
    exclude_files: z
      .array(z.string().min(1).refine(safeRelative, { message: 'an exclude_files pattern is a path inside the app directory, like "static/**/*.map", without ".." or a leading /' }), {
        error: 'exclude_files must be a list of patterns like "static/**/*.map"',
      })
      .default([]),
    hosts: z.array(host).min(1).default(['*']),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'env names must be identifiers'), z.string()).default({}),
    argv: z.array(z.string()).optional(),
    ready: z.string().startsWith('/').optional(),
    startup_timeout: duration('startup_timeout').default(PlatformDefaults.startupTimeoutMs),
    drain_timeout: duration('drain_timeout').default(PlatformDefaults.drainTimeoutMs),
    allowed_outbound_hosts: z.array(z.string()).default([]),
    isolation: isolation.optional(),
    max_reuse: maxReuse.optional(),
    placeholder: placeholderSchema.optional(),
    limits: limitsSchema.default(() => limitsSchema.parse({})),
    scale: scaleSchema.default(() => scaleSchema.parse({})),
    breaker: breakerSchema.optional(),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (f.files.length > 0 && f.runtime === 'process') {
      ctx.addIssue({ code: 'custom', path: ['files'], message: 'files are shipped to WAGI modules and components (a read-only preopened directory); a process function reads its app directory instead' });
    }
    if (f.exclude_files.length > 0 && f.files.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['exclude_files'], message: 'exclude_files leaves files out of those files = [...] ships; this function ships none' });
    }
    if (f.runtime === 'process') {
      if (!f.command) ctx.addIssue({ code: 'custom', path: ['command'], message: "a process function needs command = [\"program\", \"arg\"...]" });
      if (f.source) ctx.addIssue({ code: 'custom', path: ['source'], message: 'a process function takes command, not source' });
    } else {
      if (!f.source) ctx.addIssue({ code: 'custom', path: ['source'], message: `a ${f.runtime} function needs source = "file.wasm"` });
      if (f.command) ctx.addIssue({ code: 'custom', path: ['command'], message: `a ${f.runtime} function takes source, not command` });
    }
    if (f.runtime !== 'component') {
      // WAGI modules and processes have isolation of their own (a fresh sandbox; one process).
      if (f.isolation !== undefined) ctx.addIssue({ code: 'custom', path: ['isolation'], message: `isolation applies to runtime = "component" only (this function's runtime is "${f.runtime}")` });
      if (f.max_reuse !== undefined) ctx.addIssue({ code: 'custom', path: ['max_reuse'], message: `max_reuse applies to runtime = "component" only (this function's runtime is "${f.runtime}")` });
    } else if (f.max_reuse !== undefined && f.isolation !== 'instance') {
      ctx.addIssue({ code: 'custom', path: ['max_reuse'], message: 'max_reuse applies only with isolation = "instance" (under the default isolation = "request" every request gets an instance as new)' });
    }
  });

/** One app variable (`[variables]`): a default, or required; secret values are never shown. */
const variableSchema = z
  .object({
    default: z.string({ error: 'a variable default must be a string' }).optional(),
    required: z.boolean({ error: 'required must be true or false' }).default(false),
    secret: z.boolean({ error: 'secret must be true or false' }).default(false),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.required && v.default !== undefined) ctx.addIssue({ code: 'custom', message: 'a variable is either required or has a default, not both' });
    if (!v.required && v.default === undefined) ctx.addIssue({ code: 'custom', message: 'a variable needs default = "…" or required = true' });
  });

/** The raw manifest schema (snake_case, as written in TOML). */
export const manifestSchema = z
  .object({
    name: z.string().regex(NAME, 'an app name must be lower-case letters, digits and dashes, starting with a letter'),
    version: z.string().optional(),
    description: z.string().optional(),
    variables: z.record(z.string(), variableSchema).default({}),
    function: z.array(functionSchema).min(1, 'an app needs at least one [[function]]'),
  })
  .strict()
  .superRefine((m, ctx) => {
    for (const name of Object.keys(m.variables)) {
      if (!VARIABLE_NAME.test(name)) ctx.addIssue({ code: 'custom', path: ['variables', name], message: `'${name}' is not a variable name: variable names must be lower-case letters, digits and underscores, starting with a letter` });
    }
    // Two routes of one app that match the same paths on one host: found here, before any upload.
    const shapes = new Map<string, string>();
    m.function.forEach((f, i) => {
      f.routes.forEach((r, j) => {
        let shape: string;
        try {
          shape = parseRoute(r).shape;
        } catch {
          return;
        }
        for (const host of f.hosts) {
          const key = `${host.toLowerCase()} ${shape}`;
          const other = shapes.get(key);
          if (other !== undefined) ctx.addIssue({ code: 'custom', path: ['function', i, 'routes', j], message: `route '${r}' matches the same paths as ${other}; give one of them another path or host` });
          else shapes.set(key, `route '${r}' of function '${f.name}'`);
        }
      });
    });
    const seen = new Set<string>();
    m.function.forEach((f, i) => {
      if (seen.has(f.name)) ctx.addIssue({ code: 'custom', path: ['function', i, 'name'], message: `function name '${f.name}' is used twice` });
      seen.add(f.name);
      // Every {{ name }} in an env value must be a declared variable: found here, before any upload.
      for (const [key, value] of Object.entries(f.env)) {
        let names: string[];
        try {
          names = referencedVariables(value);
        } catch (err) {
          ctx.addIssue({ code: 'custom', path: ['function', i, 'env', key], message: (err as Error).message });
          continue;
        }
        for (const name of names) {
          if (!Object.hasOwn(m.variables, name)) {
            ctx.addIssue({ code: 'custom', path: ['function', i, 'env', key], message: `uses variable '${name}', which [variables] does not declare; add ${name} = { default = "…" } or { required = true }` });
          }
        }
      }
    });
  });

/** The manifest as the schema leaves it. */
export type RawManifest = z.output<typeof manifestSchema>;

/** The fields each table of the manifest knows, for hints about unknown ones. */
export const KNOWN_FIELDS = {
  app: Object.keys(manifestSchema.shape),
  function: Object.keys(functionSchema.shape),
  limits: Object.keys(limitsSchema.shape),
  scale: Object.keys(scaleSchema.shape),
  placeholder: Object.keys(placeholderSchema.shape),
  breaker: Object.keys(breakerSchema.shape),
  variable: Object.keys(variableSchema.shape),
} as const;
