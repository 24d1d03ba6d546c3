// A small client of the admin API for the CLI: token lookup, JSON calls, errors as messages.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PlatformDefaults } from '../config/index.js';

/** Connection options every client command takes. */
export interface ClientOptions {
  /** Admin API base URL. @default http://127.0.0.1:8081 */
  server?: string;
  /** Bearer token. @default $LAMPLIGHTER_TOKEN, then <data>/token */
  token?: string;
  /** Data directory of a local node, to read its token from. @default .lamplighter */
  data?: string;
}

/** Default data directory, relative to the working directory. */
export const DEFAULT_DATA_DIR = '.lamplighter';

/** Default admin URL. */
export const DEFAULT_SERVER = `http://${PlatformDefaults.host}:${PlatformDefaults.adminPort}`;

/** An admin API call that failed; the message is fit for a terminal. */
export class ClientError extends Error {
  override name = 'ClientError';
}

async function resolveToken(options: ClientOptions): Promise<string | undefined> {
  if (options.token) return options.token;
  if (process.env.LAMPLIGHTER_TOKEN) return process.env.LAMPLIGHTER_TOKEN;
  try {
    return (await readFile(path.join(options.data ?? DEFAULT_DATA_DIR, 'token'), 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** Talks to one node's admin API. */
export class AdminClient {
  private constructor(
    private readonly base: string,
    private readonly token: string | undefined,
  ) {}

  /** Builds a client from CLI options. */
  static async from(options: ClientOptions): Promise<AdminClient> {
    return new AdminClient((options.server ?? DEFAULT_SERVER).replace(/\/$/, ''), await resolveToken(options));
  }

  /** Sends a request; resolves with the response, throws ClientError on a non-2xx answer. */
  async call(method: string, route: string, body?: unknown, raw?: Uint8Array): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: BodyInit | undefined;
    if (raw) {
      headers['content-type'] = 'application/octet-stream';
      payload = raw as Uint8Array<ArrayBuffer>;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${this.base}${route}`, { method, headers, body: payload });
    } catch (err) {
      throw new ClientError(`Cannot reach the Lamplighter admin API at ${this.base}: ${(err as Error).cause ? String((err as { cause: unknown }).cause) : (err as Error).message}`);
    }
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        const json = (await res.json()) as { error?: { message?: string; code?: string } };
        if (json.error?.message) message = `${json.error.message} (${json.error.code ?? res.status})`;
      } catch {
        // Not JSON: keep the status line.
      }
      throw new ClientError(message);
    }
    return res;
  }

  /** Sends a request and parses the JSON answer. */
  async json<T>(method: string, route: string, body?: unknown): Promise<T> {
    const res = await this.call(method, route, body);
    return (await res.json()) as T;
  }
}
