// Reads a function's current configuration from the admin API, validating the answer at the edge.
import { request } from 'undici';
import { z } from 'zod';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import type { FunctionConfig } from './recommend.js';

const _count = z.number().int().min(0);
const _millis = z.number().min(0);

const _configSchema = z.object({
  name: z.string(),
  app: z.string().optional(),
  runtime: z.string().optional(),
  scale: z.object({
    min: _count,
    max: _count,
    idleMs: _millis,
    target: z.number().positive().nullable().optional().transform((v) => v ?? null),
    rate: z.number().positive().nullable().optional().transform((v) => v ?? null),
    windowMs: _millis.nullable().optional().transform((v) => v ?? null),
  }),
  limits: z.object({ concurrency: z.number().int().positive().optional() }).optional(),
});

/** Options for {@link fetchFunctionConfig}. */
export interface FetchFunctionConfigOptions {
  /** Bearer token for the admin API. @default undefined (no authorization header) */
  token?: string;
  /** Time the admin API has to answer. @default 10_000 */
  timeoutMs?: number;
}

/** Fetches `GET {server}/v1/functions/{name}` and returns the function's configuration. */
export async function fetchFunctionConfig(server: string, name: string, options: FetchFunctionConfigOptions = {}): Promise<FunctionConfig> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const where = `${server.replace(/\/+$/, '')}/v1/functions/${encodeURIComponent(name)}`;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let status: number;
  let text: string;
  try {
    const res = await request(where, { method: 'GET', headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    status = res.statusCode;
    text = await res.body.text();
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, `Cannot read function '${name}' from ${where}: ${reason}`, { cause });
  }
  if (status === 401 || status === 403) {
    throw new LamplighterError(ErrorCodes.UNAUTHORIZED, `Cannot read function '${name}' from ${where}: the server answered ${status}; pass --token or set LAMPLIGHTER_TOKEN`);
  }
  if (status === 404) {
    throw new LamplighterError(ErrorCodes.NOT_FOUND, `Cannot read function '${name}' from ${where}: no such function (404)`);
  }
  if (status < 200 || status >= 300) {
    throw new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, `Cannot read function '${name}' from ${where}: the server answered ${status}: ${text.slice(0, 200)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, `Cannot read function '${name}' from ${where}: the answer is not JSON`, { cause });
  }
  const parsed = _configSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issue.path.join('.') : '';
    throw new LamplighterError(
      ErrorCodes.UPSTREAM_UNAVAILABLE,
      `Cannot read function '${name}' from ${where}: unexpected answer at '${field}': ${issue?.message ?? 'invalid'}`,
    );
  }
  return parsed.data;
}
