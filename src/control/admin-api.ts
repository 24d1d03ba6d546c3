// The admin API (HTTP+JSON, bearer token) and /metrics, on the admin port.
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { bearerMatches, Dashboard, sendJson } from '../dashboard/index.js';
import { errorResponse } from '../gateway/index.js';
import { readBodyLimited } from '../instance/index.js';
import type { LogLine } from '../observability/index.js';
import type { TlsCertificates } from '../tls/index.js';
import { MAX_PROFILE_SECONDS } from './node-profiler.js';
import type { Platform } from './platform.js';

/**
 * Header on every admin API answer, naming it: a client that gets an answer without it is
 * talking to something else (a gateway port, another web server) and can say so.
 */
export const ADMIN_API_HEADER = 'x-lamplighter-admin-api';

/** Largest artifact the admin API accepts in one upload. */
export const MAX_BLOB_BYTES = 512 * 1024 * 1024;

const deploySchema = z.object({
  manifest: z.string().min(1),
  artifacts: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)).default({}),
  appDir: z.string().optional(),
});
const missingSchema = z.object({ digests: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(10_000) });
const rollbackSchema = z.object({ revision: z.number().int().positive().optional() });
const variableSchema = z.object({ value: z.string() });

/** Largest JSON body the admin API accepts. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;

/** Bytes past a limit still read (and dropped) so the 413 reaches the client. */
const DISCARD_BYTES = 64 * 1024 * 1024;

/** Time past a limit spent reading (and dropping) the rest, likewise. */
const DISCARD_MS = 5000;

/**
 * The whole request body, or BODY_TOO_LARGE. A declared length over the limit is refused before
 * reading. A chunked body has none, so it is read until it passes the limit; the rest is then
 * read and dropped (up to DISCARD_BYTES and DISCARD_MS) before the 413 is sent: a server that
 * closes with unread bytes in its socket makes the kernel reset the connection, and the client
 * loses the answer. Past those bounds the connection is cut as before.
 */
async function readAdminBody(req: IncomingMessage, limit: number, limitName: string): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined) return readBodyLimited(req, limit, declared, limitName);
  const chunks: Buffer[] = [];
  let total = 0;
  let overSince = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total <= limit) {
      chunks.push(buf);
      continue;
    }
    if (overSince === 0) {
      overSince = Date.now();
      chunks.length = 0;
    }
    if (total - limit > DISCARD_BYTES || Date.now() - overSince > DISCARD_MS) {
      req.destroy();
      break;
    }
  }
  if (overSince !== 0) {
    throw new LamplighterError(ErrorCodes.BODY_TOO_LARGE, `The request body is over the limit of ${limit} bytes (${limitName})`);
  }
  return Buffer.concat(chunks, total);
}

async function readJson<T>(req: IncomingMessage, schema: z.ZodType<T>): Promise<T> {
  const text = (await readAdminBody(req, MAX_JSON_BYTES, 'the admin API takes JSON bodies up to 16 MiB')).toString('utf8');
  let raw: unknown;
  try {
    raw = text === '' ? {} : JSON.parse(text);
  } catch {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, 'The request body is not valid JSON');
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Invalid request: ${issue ? `${issue.path.join('.') || '(body)'}: ${issue.message}` : 'bad body'}`);
  }
  return parsed.data;
}

/**
 * Bytes of followed log lines held for a client that does not read them; past it lines are
 * dropped (and counted), so a stalled `logs -f` cannot hold the node's memory.
 */
const FOLLOW_BUFFER_BYTES = 4 * 1024 * 1024;

function formatLine(line: LogLine): string {
  return `${JSON.stringify(line)}\n`;
}

/** Options for {@link startAdminApi}. */
export interface AdminApiOptions {
  /** Serve HTTPS with these certificates. @default undefined (plain HTTP) */
  tls?: TlsCertificates | undefined;
}

/** Serves the admin API for `platform`; resolves with the bound address and a close function. */
export async function startAdminApi(platform: Platform, port: number, host: string, options: AdminApiOptions = {}): Promise<{ port: number; address: AddressInfo; close(): Promise<void> }> {
  const tls = options.tls;
  const dashboard = new Dashboard(platform);
  const listener: http.RequestListener = (req, res) => {
    res.setHeader(ADMIN_API_HEADER, '1');
    handle(platform, dashboard, req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const out = errorResponse(err, undefined);
      res.writeHead(out.status, Object.fromEntries(out.headers));
      res.end(out.body);
    });
  };
  const server = tls
    ? https.createServer({ ...tls.defaultCredentials(), SNICallback: (name, done) => done(null, tls.contextFor(name)) }, listener)
    : http.createServer(listener);
  // Clients without SNI get the server's own context, which only setSecureContext replaces.
  const stopTls = tls?.onChange(() => (server as https.Server).setSecureContext(tls.defaultCredentials()));
  server.once('close', () => stopTls?.());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    address,
    close: () =>
      new Promise<void>((resolve) => {
        dashboard.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * `GET /v1/inspect[?function=NAME]`: the node now. `POST /v1/inspect/profile?seconds=N`: a CPU
 * profile (`.cpuprofile`). `POST /v1/inspect/heap`: a heap snapshot, streamed as V8 writes it.
 */
async function handleInspect(platform: Platform, method: string, what: string | undefined, url: URL, res: ServerResponse): Promise<void> {
  if (!what && method === 'GET') {
    const fn = url.searchParams.get('function') ?? undefined;
    const inspection = platform.inspect(fn);
    if (fn !== undefined && inspection.functions.length === 0) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No function named '${fn}' on node '${platform.nodeName}'`);
    return sendJson(res, 200, inspection);
  }
  if (what === 'profile' && method === 'POST') {
    const secondsText = url.searchParams.get('seconds') ?? '10';
    const seconds = Number(secondsText);
    if (!/^\d+(\.\d+)?$/.test(secondsText) || !(seconds > 0 && seconds <= MAX_PROFILE_SECONDS)) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, `seconds must be a number above 0 and at most ${MAX_PROFILE_SECONDS}, like 10; got '${secondsText}'`);
    }
    const closed = new AbortController();
    const onClose = (): void => closed.abort();
    res.once('close', onClose);
    try {
      const profile = await platform.profiler.cpuProfile(seconds, closed.signal);
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/json', 'content-disposition': 'attachment; filename="lamplighter.cpuprofile"' });
      res.end(profile);
    } finally {
      res.off('close', onClose);
    }
    return;
  }
  if (what === 'heap' && method === 'POST') {
    // V8 hands the snapshot over while the node's JavaScript is stopped, so nothing could be sent
    // meanwhile: it goes to a temporary file first, then to the client at the pace it reads.
    const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-heap-'));
    const file = path.join(dir, 'lamplighter.heapsnapshot');
    try {
      const fd = openSync(file, 'w');
      try {
        await platform.profiler.heapSnapshot((chunk) => writeSync(fd, chunk));
      } finally {
        closeSync(fd);
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-disposition': 'attachment; filename="lamplighter.heapsnapshot"' });
      await pipeline(createReadStream(file), res).catch(() => res.destroy());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return;
  }
  throw new LamplighterError(ErrorCodes.NOT_FOUND, `No admin endpoint ${method} ${url.pathname} (inspect has GET /v1/inspect, POST /v1/inspect/profile, POST /v1/inspect/heap)`);
}

async function handle(platform: Platform, dashboard: Dashboard, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const method = req.method ?? 'GET';
  let parts: string[];
  try {
    parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Malformed percent-encoding in ${url.pathname}`);
  }

  if (method === 'GET' && url.pathname === '/healthz') return sendJson(res, 200, { ok: true });
  if (method === 'GET' && url.pathname === '/metrics') {
    const text = await platform.metrics.render();
    res.writeHead(200, { 'content-type': platform.metrics.registry.contentType });
    res.end(text);
    return;
  }
  // The dashboard's page is public; its data endpoints, and /v1 reached with its session cookie, are not.
  if (Dashboard.serves(url.pathname)) return dashboard.handle(req, res, url);
  if (parts[0] !== 'v1') throw new LamplighterError(ErrorCodes.NOT_FOUND, `No admin endpoint ${method} ${url.pathname}`);
  if (!bearerMatches(req, platform.token) && !dashboard.authorize(req)) {
    throw new LamplighterError(ErrorCodes.UNAUTHORIZED, 'Missing or wrong bearer token (see --token, LAMPLIGHTER_TOKEN, or <data>/token)');
  }
  const [, resource, name, action] = parts;

  if (resource === 'blobs' && name === 'missing' && method === 'POST') {
    const { digests } = await readJson(req, missingSchema);
    const missing: string[] = [];
    for (const d of digests) if (!(await platform.store.hasBlob(d))) missing.push(d);
    return sendJson(res, 200, { missing });
  }
  if (resource === 'blobs' && name && method === 'PUT') {
    const bytes = await readAdminBody(req, MAX_BLOB_BYTES, 'the admin API\'s blob size limit');
    const digest = await platform.store.putBlob(bytes, name);
    return sendJson(res, 201, { digest });
  }
  if (resource === 'cluster' && !name && method === 'GET') return sendJson(res, 200, platform.clusterView());
  if (resource === 'inspect') return handleInspect(platform, method, name, url, res);
  if (resource === 'variables') {
    const variables = platform.clusterVariables;
    if (!variables) throw new LamplighterError(ErrorCodes.NOT_FOUND, 'Variables are set through the admin API in a cluster only; on a lone node use LAMPLIGHTER_VAR_<NAME> or --variables-file');
    // Names only, never values: some are secrets.
    if (!name && method === 'GET') return sendJson(res, 200, { names: await variables.names() });
    if (name && method === 'PUT') {
      const { value } = await readJson(req, variableSchema);
      await variables.set(name, value);
      return sendJson(res, 200, { set: name });
    }
    if (name && method === 'DELETE') {
      if (!(await variables.remove(name))) throw new LamplighterError(ErrorCodes.NOT_FOUND, `Variable '${name}' has no value in the cluster`);
      return sendJson(res, 200, { removed: name });
    }
  }
  if (resource === 'config') {
    const control = platform.configControl;
    if (!control) throw new LamplighterError(ErrorCodes.NOT_FOUND, 'This node was not started by `lamplighter serve` or `up`: it has no settings to show or reload');
    if (!name && method === 'GET') return sendJson(res, 200, control.show());
    if (name === 'reload' && method === 'POST') {
      try {
        return sendJson(res, 200, await control.reload());
      } catch (err) {
        if (err instanceof LamplighterError) throw err;
        throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Configuration not reloaded: ${(err as Error).message}`);
      }
    }
  }
  if (resource === 'apps' && !name && method === 'GET') return sendJson(res, 200, { apps: platform.list() });
  if (resource === 'apps' && !name && method === 'POST') {
    const body = await readJson(req, deploySchema);
    const { revision, unchanged } = await platform.deploy(body);
    return sendJson(res, unchanged ? 200 : 201, { app: revision.app, revision: revision.number, createdAt: revision.createdAt, unchanged });
  }
  if (resource === 'apps' && name && !action && method === 'DELETE') {
    await platform.remove(name);
    return sendJson(res, 200, { removed: name });
  }
  if (resource === 'apps' && name && action === 'rollback' && method === 'POST') {
    const body = await readJson(req, rollbackSchema);
    const revision = await platform.rollback(name, body.revision);
    return sendJson(res, 200, { app: name, revision: revision.number });
  }
  if (resource === 'apps' && name && action === 'revisions' && method === 'GET') {
    const revisions = await platform.store.revisions(name);
    return sendJson(res, 200, { revisions: revisions.map((r) => ({ number: r.number, createdAt: r.createdAt, artifacts: r.artifacts })) });
  }
  if (resource === 'functions' && name && method === 'GET') {
    const status = platform.functionStatus(name);
    if (!status) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No function named '${name}'`);
    return sendJson(res, 200, status);
  }
  if (resource === 'logs' && name && method === 'GET') {
    const tailText = url.searchParams.get('tail');
    if (tailText !== null && !/^\d+$/.test(tailText)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `tail must be a number of lines, 0 or more, got '${tailText}'`);
    const sinceText = url.searchParams.get('since');
    if (sinceText !== null && !/^\d+$/.test(sinceText)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `since must be a time in milliseconds since the epoch, got '${sinceText}'`);
    const since = sinceText === null ? undefined : Number(sinceText);
    // Without either, the last 100 lines; with `since` alone, every line since then.
    const tail = tailText !== null ? Number(tailText) : since === undefined ? 100 : undefined;
    // A removed function's files stay, so its name still reads them.
    const functions = platform.functionsOf(name) ?? ((await platform.logs.hasFiles(name)) ? [name] : undefined);
    if (!functions) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No app or function named '${name}', and no logs kept of one`);
    const follow = url.searchParams.get('follow') === '1';
    const wanted = new Set(functions);
    // Followed from before the files are read, so no line falls between the two.
    const arrived: LogLine[] = [];
    let streaming = false;
    const unfollow = follow
      ? platform.logs.follow((line) => {
          if (!wanted.has(line.function)) return;
          if (!streaming) arrived.push(line);
          else if (res.writableLength <= FOLLOW_BUFFER_BYTES) res.write(formatLine(line));
          else platform.metrics.logLinesDropped(line.function, 'follow', 1);
        })
      : undefined;
    let read;
    try {
      read = await platform.logs.read(functions, { since, tail });
    } catch (err) {
      unfollow?.();
      throw err;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'x-lamplighter-log-damaged': String(read.damaged) });
    res.flushHeaders();
    for (const line of read.lines) res.write(formatLine(line));
    if (!unfollow) {
      res.end();
      return;
    }
    // A line that arrived while the files were read may be in them too.
    const first = arrived[0]?.time ?? Infinity;
    const inFiles = new Set(read.lines.filter((l) => l.time >= first).map(formatLine));
    for (const line of arrived) if (!inFiles.has(formatLine(line))) res.write(formatLine(line));
    streaming = true;
    if (res.destroyed) unfollow();
    else res.once('close', unfollow);
    return;
  }
  throw new LamplighterError(ErrorCodes.NOT_FOUND, `No admin endpoint ${method} ${url.pathname}`);
}
