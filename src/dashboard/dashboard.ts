// The dashboard on the admin port: the page at /ui, its login (a session cookie) and its time series.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { readBodyLimited } from '../instance/index.js';
import { bearerMatches, sendJson, tokenMatches } from './admin-http.js';
import { SeriesSampler, type SamplerSource, type SeriesSamplerOptions } from './series-sampler.js';
import { SESSION_COOKIE, SessionStore, readCookie, type SessionStoreOptions } from './sessions.js';
import { StaticFiles } from './static-files.js';

/**
 * Header carrying the session's secret, which the page sends on every request. A cross-site form
 * or image cannot set it, a cross-site script cannot without a CORS preflight (which the admin
 * port never grants), and a server that sees the cookie (the cookie goes to every port of the
 * host, the gateway's too) does not know it.
 */
export const DASHBOARD_REQUEST_HEADER = 'x-lamplighter-dashboard';

/** Only this origin: no inline script or style, no other host, no framing. */
const CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Largest login body read. */
const MAX_LOGIN_BYTES = 4096;

/** Samples sent to the page per function (two minutes at one a second). */
const SAMPLES_SENT = 120;

/** What the dashboard needs of a node. */
export interface DashboardSource extends SamplerSource {
  /** The admin token a login must present. */
  readonly token: string;
  readonly nodeName: string;
}

/** Options for {@link Dashboard}. */
export interface DashboardOptions {
  /** Session lifetimes. @default SessionDefaults */
  sessions?: SessionStoreOptions;
  /** Sampling of the charts' series. @default SamplerDefaults */
  sampler?: SeriesSamplerOptions;
}

/** Serves `/ui` and `/ui/*`, and tells the admin API whether a request carries a live dashboard session. */
export class Dashboard {
  readonly #source: DashboardSource;
  readonly #sessions: SessionStore;
  readonly #sampler: SeriesSampler;
  readonly #files = new StaticFiles();

  constructor(source: DashboardSource, options: DashboardOptions = {}) {
    this.#source = source;
    this.#sessions = new SessionStore(options.sessions);
    this.#sampler = new SeriesSampler(source, options.sampler);
  }

  /** Whether the dashboard serves `pathname`. */
  static serves(pathname: string): boolean {
    return pathname === '/ui' || pathname.startsWith('/ui/');
  }

  /**
   * Whether `req` carries a live session: its cookie, and its secret in {@link DASHBOARD_REQUEST_HEADER}.
   * A live cookie with a wrong or missing secret, or a state change (any method but GET and HEAD)
   * from another Origin, is refused with UNAUTHORIZED rather than ignored.
   */
  authorize(req: IncomingMessage): boolean {
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (id === undefined) return false;
    const secret = req.headers[DASHBOARD_REQUEST_HEADER];
    const found = this.#sessions.check(id, typeof secret === 'string' ? secret : '');
    if (found === 'none') return false;
    const method = req.method ?? 'GET';
    if (found === 'wrong-secret') {
      throw new LamplighterError(
        ErrorCodes.UNAUTHORIZED,
        `Refused ${method} ${req.url ?? ''}: a dashboard session cookie counts only with the session's secret in the '${DASHBOARD_REQUEST_HEADER}' header, as the page sends it (scripts should send the bearer token instead)`,
      );
    }
    if (method !== 'GET' && method !== 'HEAD' && !sameOrigin(req)) {
      throw new LamplighterError(ErrorCodes.UNAUTHORIZED, `Refused ${method} ${req.url ?? ''} made with a dashboard session from another origin (${String(req.headers.origin)})`);
    }
    return true;
  }

  /** Answers a request for `/ui` or below. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    res.setHeader('x-frame-options', 'DENY');
    if (url.pathname.startsWith('/ui/api/')) return this.#api(method, url.pathname.slice('/ui/api/'.length), req, res);
    if (method !== 'GET' && method !== 'HEAD') throw new LamplighterError(ErrorCodes.NOT_FOUND, `No dashboard endpoint ${method} ${url.pathname} (the page is GET /ui)`);
    const file = this.#files.get(url.pathname);
    if (!file) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No dashboard file ${url.pathname}`);
    const headers = { 'content-type': file.contentType, 'cache-control': file.cacheControl, etag: file.etag };
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': file.body.length });
    res.end(method === 'HEAD' ? undefined : file.body);
  }

  /** Stops sampling and ends every session. */
  close(): void {
    this.#sampler.close();
  }

  async #api(method: string, what: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('cache-control', 'no-store');
    if (what === 'session' && method === 'POST') return this.#login(req, res);
    if (what === 'session' && method === 'DELETE') {
      const id = readCookie(req.headers.cookie, SESSION_COOKIE);
      if (id !== undefined) this.#sessions.end(id);
      res.setHeader('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
      return sendJson(res, 200, { loggedOut: true });
    }
    if (!this.#allowed(req)) throw new LamplighterError(ErrorCodes.UNAUTHORIZED, 'Not logged in to the dashboard, or the session expired: log in again with the admin token');
    if (what === 'session' && method === 'GET') return sendJson(res, 200, { node: this.#source.nodeName });
    if (what === 'series' && method === 'GET') {
      const functions = Object.fromEntries(
        Object.entries(this.#sampler.read()).map(([name, s]) => [name, { ...s, samples: s.samples.slice(-SAMPLES_SENT) }]),
      );
      return sendJson(res, 200, { node: this.#source.nodeName, functions });
    }
    throw new LamplighterError(ErrorCodes.NOT_FOUND, `No dashboard endpoint ${method} /ui/api/${what} (it has POST, GET and DELETE /ui/api/session, GET /ui/api/series)`);
  }

  /** A session cookie or the bearer token opens the data endpoints, as it opens /v1. */
  #allowed(req: IncomingMessage): boolean {
    return bearerMatches(req, this.#source.token) || this.authorize(req);
  }

  async #login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers[DASHBOARD_REQUEST_HEADER] !== 'login' || !sameOrigin(req)) {
      throw new LamplighterError(ErrorCodes.UNAUTHORIZED, `Log in from the dashboard page: the request lacks the '${DASHBOARD_REQUEST_HEADER}: login' header or comes from another origin`);
    }
    const token = await readToken(req);
    if (!tokenMatches(token, this.#source.token)) {
      throw new LamplighterError(ErrorCodes.UNAUTHORIZED, `Wrong admin token for node '${this.#source.nodeName}': use the one printed at start, set by --token or LAMPLIGHTER_TOKEN, or kept in <data>/token`);
    }
    const { id, secret } = this.#sessions.create();
    res.setHeader('set-cookie', `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${this.#sessions.maxAgeSeconds}`);
    return sendJson(res, 200, { node: this.#source.nodeName, secret });
  }
}

/** True unless the browser names an Origin other than the host it sent the request to. */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** The token of a login body: JSON `{"token": "..."}`. */
async function readToken(req: IncomingMessage): Promise<string> {
  const body = await readBodyLimited(req, MAX_LOGIN_BYTES, req.headers['content-length'], 'a dashboard login body');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, 'A dashboard login body is JSON: {"token": "..."}');
  }
  const token = (parsed as { token?: unknown } | null)?.token;
  if (typeof token !== 'string' || token === '') throw new LamplighterError(ErrorCodes.BAD_REQUEST, 'A dashboard login body is JSON with a non-empty "token" string');
  return token;
}
