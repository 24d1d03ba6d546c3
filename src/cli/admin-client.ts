// A small client of the admin API for the CLI: token lookup, JSON calls, errors as messages.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, fetch as fetchWith } from 'undici';
import { PlatformDefaults } from '../config/index.js';
import { ADMIN_API_HEADER } from '../control/index.js';
import { localNodeToken } from './local-nodes.js';

/** Connection options every client command takes. */
export interface ClientOptions {
  /** Admin API base URL. @default $LAMPLIGHTER_SERVER, then http://127.0.0.1:8081 */
  server?: string;
  /** Bearer token. @default $LAMPLIGHTER_TOKEN, then <data>/token */
  token?: string;
  /** Data directory of a local node, to read its token from. @default .lamplighter */
  data?: string;
  /** PEM file of the CA that signed an https admin API's certificate. @default $LAMPLIGHTER_CA, then the system's (and NODE_EXTRA_CA_CERTS) */
  ca?: string;
}

/** Default data directory, relative to the working directory. */
export const DEFAULT_DATA_DIR = '.lamplighter';

/** Default admin URL. */
export const DEFAULT_SERVER = `http://${PlatformDefaults.host}:${PlatformDefaults.adminPort}`;

/** The admin URL client commands use: `--server`, then `$LAMPLIGHTER_SERVER`, then {@link DEFAULT_SERVER}. */
export function resolveServer(server: string | undefined): string {
  return (server || process.env.LAMPLIGHTER_SERVER || DEFAULT_SERVER).replace(/\/+$/, '');
}

/** Where the admin URL came from, for messages that tell the user what to change. */
function serverSource(server: string | undefined): string {
  if (server) return '--server';
  if (process.env.LAMPLIGHTER_SERVER) return '$LAMPLIGHTER_SERVER';
  return 'the default (set --server or LAMPLIGHTER_SERVER)';
}

/** An admin API call that failed; the message is fit for a terminal. */
export class ClientError extends Error {
  override name = 'ClientError';

  constructor(
    message: string,
    /** The HTTP status the admin API answered with; undefined when it gave no usable answer. */
    readonly status?: number,
  ) {
    super(message);
  }
}

async function resolveToken(options: ClientOptions): Promise<string | undefined> {
  if (options.token) return options.token;
  if (process.env.LAMPLIGHTER_TOKEN) return process.env.LAMPLIGHTER_TOKEN;
  try {
    return (await readFile(path.join(options.data ?? DEFAULT_DATA_DIR, 'token'), 'utf8')).trim();
  } catch {
    // A node started here by `up` (its data in a temporary directory) says where its token is.
    return localNodeToken(resolveServer(options.server));
  }
}

/** Where the CA came from, for messages; undefined when none was given. */
function caSource(options: ClientOptions): { file: string; from: string } | undefined {
  if (options.ca) return { file: options.ca, from: '--ca' };
  if (process.env.LAMPLIGHTER_CA) return { file: process.env.LAMPLIGHTER_CA, from: '$LAMPLIGHTER_CA' };
  return undefined;
}

/** Codes a TLS client gives when it does not trust the server's certificate or its name. */
const UNTRUSTED_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

type Fetch = (url: string, init: { method: string; headers: Record<string, string>; body: string | Uint8Array<ArrayBuffer> | undefined }) => Promise<Response>;

/** Talks to one node's admin API. */
export class AdminClient {
  private constructor(
    private readonly base: string,
    private readonly token: string | undefined,
    /** Where `base` came from (a flag, the environment, the default). */
    private readonly source: string,
    private readonly fetch: Fetch,
    /** Where the trusted CA came from, for messages. */
    private readonly ca: { file: string; from: string } | undefined,
  ) {}

  /** Builds a client from CLI options. */
  static async from(options: ClientOptions): Promise<AdminClient> {
    const base = resolveServer(options.server);
    const source = serverSource(options.server);
    if (!URL.canParse(base) || !/^https?:$/.test(new URL(base).protocol)) {
      throw new ClientError(`The admin API URL from ${source} must be an http:// or https:// URL like ${DEFAULT_SERVER}, got '${base}'`);
    }
    const ca = caSource(options);
    return new AdminClient(base, await resolveToken(options), source, ca ? await fetchTrusting(ca) : fetch, ca);
  }

  /** Refuses an answer that did not come from a Lamplighter admin API, saying what it was. */
  private checkOrigin(res: Response): void {
    if (res.headers.get(ADMIN_API_HEADER) !== null) return;
    const type = res.headers.get('content-type')?.split(';')[0] || 'no content type';
    const what = res.headers.get('x-lamplighter-cold-start') !== null
      ? "a Lamplighter gateway, not its admin API (that is on the node's --admin-port, 8081 by default)"
      : `something else (it answered ${res.status} with ${type})`;
    throw new ClientError(`${this.base} (from ${this.source}) is not a Lamplighter admin API: it is ${what}. Point --server or LAMPLIGHTER_SERVER at a node's admin API, e.g. ${DEFAULT_SERVER}`);
  }

  /** Sends a request; resolves with the response, throws ClientError on a non-2xx answer. */
  async call(method: string, route: string, body?: unknown, raw?: Uint8Array): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: string | Uint8Array<ArrayBuffer> | undefined;
    if (raw) {
      headers['content-type'] = 'application/octet-stream';
      payload = raw as Uint8Array<ArrayBuffer>;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await this.fetch(`${this.base}${route}`, { method, headers, body: payload });
    } catch (err) {
      const cause = (err as Error).cause as { code?: string; message?: string } | undefined;
      const reason = cause?.message || cause?.code || (err as Error).message;
      if (cause?.code !== undefined && UNTRUSTED_CODES.has(cause.code)) {
        const given = this.ca ? `the CA from ${this.ca.from} ('${this.ca.file}') did not sign it` : 'no CA was given for it';
        throw new ClientError(
          `The admin API at ${this.base} (from ${this.source}) presented a certificate this client does not trust (${reason}): ${given}. Give the CA that signed it with --ca FILE or LAMPLIGHTER_CA (or NODE_EXTRA_CA_CERTS), and check that the URL's host is one the certificate names.`,
        );
      }
      throw new ClientError(
        `Cannot reach the Lamplighter admin API at ${this.base} (from ${this.source}): ${reason}. Is a node running there (\`lamplighter serve\` or \`lamplighter up\`)? Point --server or LAMPLIGHTER_SERVER at its admin API.`,
      );
    }
    this.checkOrigin(res);
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        const json = (await res.json()) as { error?: { message?: string; code?: string } };
        if (json.error?.message) message = `${json.error.message} (${json.error.code ?? res.status})`;
      } catch {
        // Not JSON: keep the status line.
      }
      throw new ClientError(message, res.status);
    }
    return res;
  }

  /** Sends a request and parses the JSON answer. */
  async json<T>(method: string, route: string, body?: unknown): Promise<T> {
    const res = await this.call(method, route, body);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ClientError(`${this.base} answered ${method} ${route} with something that is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
    }
  }
}

/** A fetch that trusts the CA in `ca.file` (besides the system's) for https admin URLs. */
async function fetchTrusting(ca: { file: string; from: string }): Promise<Fetch> {
  let pem: string;
  try {
    pem = await readFile(ca.file, 'utf8');
  } catch (err) {
    throw new ClientError(`Cannot read the CA file '${ca.file}' from ${ca.from}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}. Give the PEM certificate of the CA that signed the admin API's certificate`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ClientError(`The CA file '${ca.file}' from ${ca.from} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  const agent = new Agent({ connect: { ca: pem } });
  // undici's own fetch, the one that takes a dispatcher; its Response is the global one's shape.
  return async (url, init) => (await fetchWith(url, { ...init, dispatcher: agent })) as unknown as Response;
}
