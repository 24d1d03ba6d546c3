// Dashboard sessions: a random id handed out in a cookie and a random secret the page sends in a
// header, mapped here to their expiry; the token never leaves the login request.
import { randomBytes, timingSafeEqual } from 'node:crypto';

/** Name of the cookie that carries a dashboard session id. */
export const SESSION_COOKIE = 'll_session';

/** Session lifetime defaults: idle timeout, absolute lifetime and how many sessions are kept. */
export const SessionDefaults = {
  idleMs: 30 * 60_000,
  lifetimeMs: 12 * 60 * 60_000,
  maxSessions: 256,
} as const;

/** Options for {@link SessionStore}. */
export interface SessionStoreOptions {
  /** A session unused this long ends. @default 30 minutes */
  idleMs?: number;
  /** A session ends this long after login, used or not. @default 12 hours */
  lifetimeMs?: number;
  /** Sessions kept at once; past it the least recently used one ends. @default 256 */
  maxSessions?: number;
  /** Milliseconds since the epoch; tests pass their own. @default Date.now */
  now?: () => number;
}

interface Session {
  secret: Buffer;
  created: number;
  lastUsed: number;
}

/** A new session: the id goes in the cookie, the secret to the page. */
export interface NewSession {
  id: string;
  secret: string;
}

/** What {@link SessionStore.check} found: a live session, none (or expired), or a live one with the wrong secret. */
export type SessionCheck = 'live' | 'none' | 'wrong-secret';

/** The live dashboard sessions of one node, in memory: a restart logs everyone out. */
export class SessionStore {
  // Map order is insertion order; touch() re-inserts, so the first entry is the least recently used.
  readonly #sessions = new Map<string, Session>();
  readonly #idleMs: number;
  readonly #lifetimeMs: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(options: SessionStoreOptions = {}) {
    this.#idleMs = options.idleMs ?? SessionDefaults.idleMs;
    this.#lifetimeMs = options.lifetimeMs ?? SessionDefaults.lifetimeMs;
    this.#max = options.maxSessions ?? SessionDefaults.maxSessions;
    this.#now = options.now ?? Date.now;
  }

  /** Seconds a new session may last, for the cookie's Max-Age. */
  get maxAgeSeconds(): number {
    return Math.floor(this.#lifetimeMs / 1000);
  }

  /** Starts a session: an id and a secret, 256 random bits each, base64url. */
  create(): NewSession {
    const id = randomBytes(32).toString('base64url');
    const secret = randomBytes(32);
    const now = this.#now();
    this.#sessions.set(id, { secret, created: now, lastUsed: now });
    while (this.#sessions.size > this.#max) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    return { id, secret: secret.toString('base64url') };
  }

  /** Whether `id` names a live session whose secret is `secret`; a live one counts as used now. */
  check(id: string, secret: string): SessionCheck {
    const session = this.#sessions.get(id);
    if (!session) return 'none';
    const now = this.#now();
    if (now - session.lastUsed > this.#idleMs || now - session.created > this.#lifetimeMs) {
      this.#sessions.delete(id);
      return 'none';
    }
    const given = Buffer.from(secret, 'base64url');
    if (given.length !== session.secret.length || !timingSafeEqual(given, session.secret)) return 'wrong-secret';
    session.lastUsed = now;
    this.#sessions.delete(id);
    this.#sessions.set(id, session);
    return 'live';
  }

  /** Ends a session (logout). */
  end(id: string): void {
    this.#sessions.delete(id);
  }

  /** Sessions held now, expired ones included until next touched. */
  get size(): number {
    return this.#sessions.size;
  }
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
