// A node's connection to NATS: the --cluster URLs, TLS, credentials, and errors that say what to fix.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  connect,
  credsAuthenticator,
  nkeys,
  type NatsConnection,
  type NodeConnectionOptions,
  type Status,
} from '@nats-io/transport-node';
import { ErrorCodes, LamplighterError } from '../errors/index.js';

/** How long the first connection may take before `connectCluster` gives up, in ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/** Base wait between reconnect attempts, in ms; short so a node rides out a server's loss quickly. */
export const RECONNECT_WAIT_MS = 250;

/** Upper bound of the random delay added to each reconnect wait, in ms (more for TLS, which costs more). */
export const RECONNECT_JITTER_MS = 250;

const urlForm = 'nats://HOST:PORT or tls://HOST:PORT, several separated by commas';

/**
 * Parses the text of `--cluster` into NATS server URLs, `nats://HOST:PORT` or `tls://HOST:PORT`
 * (TLS required). The port defaults to 4222. Refuses anything else, naming the entry.
 */
export function parseClusterUrls(text: string): string[] {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `--cluster needs at least one NATS server URL (${urlForm}), got '${text}'`);
  }
  return entries.map(_parseServerUrl);
}

/** Where and how a node connects to NATS. */
export interface ClusterConnectOptions {
  /** NATS server URLs as {@link parseClusterUrls} returns them. */
  servers: string[];
  /** The connection's name as the servers show it: the node's name. */
  name: string;
  /** PEM file of the CA that signed the servers' certificates (`--nats-ca`); implies TLS. @default the system's CAs */
  ca?: string;
  /** PEM file of this node's client certificate (`--nats-cert`); needs `key`; implies TLS. @default undefined */
  cert?: string;
  /** PEM file of the client certificate's private key (`--nats-key`). @default undefined */
  key?: string;
  /** A NATS `.creds` file holding a user JWT and its nkey seed (`--nats-creds`). @default undefined */
  creds?: string;
  /** A token the servers require (`--nats-token`). @default undefined */
  token?: string;
  /** How long the first connection may take, in ms. @default {@link DEFAULT_CONNECT_TIMEOUT_MS} */
  connectTimeoutMs?: number;
  /**
   * Told of the connection's changes once connected: `disconnect`, `reconnecting` (each attempt),
   * `reconnect`, `error`, `update` (servers learned or lost), `staleConnection`, `ldm`, `close`.
   * `data` is the server's URL or the error's message. @default undefined
   */
  onStatus?: (event: ClusterConnectionStatus) => void;
}

/** A change of a cluster connection's state, for logs. */
export interface ClusterConnectionStatus {
  type: string;
  data?: string;
}

/**
 * Connects to NATS. The first connection fails within `connectTimeoutMs` with a LamplighterError
 * naming each URL tried and why; once connected, the connection reconnects forever, trying the
 * servers again after a short jittered wait, so a node rides out the loss of a server.
 */
export async function connectCluster(options: ClusterConnectOptions): Promise<NatsConnection> {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const base = await _connectionOptions(options, timeoutMs);
  const deadline = Date.now() + timeoutMs;
  await _probe(options.servers, base, timeoutMs, _tlsUse(base, options));
  const remaining = Math.max(deadline - Date.now(), 1);
  let nc: NatsConnection;
  try {
    // The dial timeout in `base` stays whole: the client uses it for every reconnect too.
    nc = await _withDeadline(connect({ ...base, servers: options.servers }), remaining);
  } catch (err) {
    // Rare: a server lost between the probe and this dial, or several servers configured unlike each other.
    const why = _reason(err, options.servers[0]!, _tlsUse(base, options)).reason;
    throw new LamplighterError(
      ErrorCodes.UPSTREAM_UNAVAILABLE,
      `Cannot join the cluster: a NATS server of ${options.servers.join(', ')} accepted a first dial, ` +
        `but the connection then failed (${why})`,
      { cause: err },
    );
  }
  if (options.onStatus) _forwardStatus(nc, options.onStatus);
  return nc;
}

/**
 * Dials every URL alone, without reconnecting, and resolves once one accepts. A client that
 * reconnects reports only the last server's failure, and keeps a TLS refusal to itself until its
 * timeout; a lone dial that does not reconnect says at once why each server failed.
 */
async function _probe(servers: string[], base: NodeConnectionOptions, timeoutMs: number, tls: _TlsUse): Promise<void> {
  const failures: _Failure[] = [];
  await new Promise<void>((resolve, reject) => {
    for (const url of servers) {
      _withDeadline(connect({ ...base, servers: [url], reconnect: false }), timeoutMs).then(
        (nc) => {
          void nc.close();
          resolve();
        },
        (err: unknown) => {
          failures.push({ url, ..._reason(err, url, tls) });
          if (failures.length === servers.length) reject(_failure(_inOrder(failures, servers), err));
        },
      );
    }
  });
}

/** What a failed dial's reason depends on: whether TLS was asked for, and with a client certificate. */
interface _TlsUse {
  required: boolean;
  gaveCert: boolean;
}

function _tlsUse(base: NodeConnectionOptions, options: ClusterConnectOptions): _TlsUse {
  return { required: base.tls !== undefined, gaveCert: options.cert !== undefined };
}

interface _Failure {
  url: string;
  reason: string;
  refusedCredentials: boolean;
}

function _inOrder(failures: _Failure[], servers: string[]): _Failure[] {
  return [...failures].sort((a, b) => servers.indexOf(a.url) - servers.indexOf(b.url));
}

function _parseServerUrl(entry: string): string {
  const refuse = (why: string): never => {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `--cluster entry '${entry}' ${why}; expected ${urlForm}`, {
      detail: { entry },
    });
  };
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return refuse('is not a URL');
  }
  if (url.protocol !== 'nats:' && url.protocol !== 'tls:') refuse(`has scheme '${url.protocol.slice(0, -1)}'`);
  if (url.hostname === '') refuse('has no host');
  // Secrets in a URL end up in logs and process listings; the flags keep them out of both.
  if (url.username !== '' || url.password !== '') refuse('carries credentials (give them with --nats-token or --nats-creds)');
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') refuse('has a path or query');
  return `${url.protocol}//${url.hostname}:${url.port === '' ? '4222' : url.port}`;
}

/** Reads and checks every file named by the options, so a bad one is reported by its flag before any dial. */
async function _connectionOptions(options: ClusterConnectOptions, timeoutMs: number): Promise<NodeConnectionOptions> {
  if (options.servers.length === 0) {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `--cluster needs at least one NATS server URL (${urlForm})`);
  }
  options.servers.forEach(_parseServerUrl);
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new LamplighterError(
      ErrorCodes.BAD_REQUEST,
      `--nats-cert and --nats-key go together: got only ${options.cert === undefined ? '--nats-key' : '--nats-cert'}`,
    );
  }
  if (options.creds !== undefined && options.token !== undefined) {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, 'Give --nats-creds or --nats-token, not both');
  }
  const [ca, cert, key, creds] = await Promise.all([
    _readFlagFile('--nats-ca', options.ca),
    _readFlagFile('--nats-cert', options.cert),
    _readFlagFile('--nats-key', options.key),
    _readFlagFile('--nats-creds', options.creds),
  ]);
  if (ca !== undefined) _checkCertificate('--nats-ca', options.ca!, ca);
  if (cert !== undefined) _checkCertificate('--nats-cert', options.cert!, cert);
  if (key !== undefined) _checkKey(options.key!, key);
  const wantsTls = ca !== undefined || cert !== undefined || options.servers.some((s) => s.startsWith('tls://'));
  const result: NodeConnectionOptions = {
    name: options.name,
    timeout: timeoutMs,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: RECONNECT_WAIT_MS,
    reconnectJitter: RECONNECT_JITTER_MS,
    reconnectJitterTLS: RECONNECT_JITTER_MS * 2,
    // A node keeps trying through a server's restart, when it may briefly refuse credentials it accepts later.
    ignoreAuthErrorAbort: true,
    // Notice a server that went silent (a partition, not a closed socket) within seconds, not minutes.
    pingInterval: 5000,
    maxPingOut: 2,
  };
  // An empty object still means "TLS required"; absent lets the server's offer decide.
  if (wantsTls) result.tls = { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
  if (creds !== undefined) result.authenticator = credsAuthenticator(new TextEncoder().encode(_checkCreds(options.creds!, creds)));
  if (options.token !== undefined) result.token = options.token;
  return result;
}

async function _readFlagFile(flag: string, file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined;
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Cannot read the ${flag} file '${file}' (${why})`, { cause: err });
  }
}

function _checkCertificate(flag: string, file: string, pem: string): void {
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `The ${flag} file '${file}' is not a PEM certificate`, { cause: err });
  }
}

function _checkKey(file: string, pem: string): void {
  try {
    createPrivateKey(pem);
  } catch (err) {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `The --nats-key file '${file}' is not a PEM private key`, { cause: err });
  }
}

// A .creds file is a user JWT block followed by an nkey seed block, each between "-----...-----" lines.
const credsBlock = /-{3,}[^\n]*-{3,}\r?\n\s*([^\s-][^\n]*?)\s*\r?\n\s*-{3,}[^\n]*-{3,}/g;

function _checkCreds(file: string, text: string): string {
  const blocks = [...text.matchAll(credsBlock)].map((m) => m[1]!);
  const refuse = (why: string, cause?: unknown): never => {
    throw new LamplighterError(
      ErrorCodes.BAD_REQUEST,
      `The --nats-creds file '${file}' is not a NATS credentials file: ${why} (make one with 'nsc generate creds')`,
      { cause },
    );
  };
  if (blocks.length < 2) refuse('it needs a user JWT block and an nkey seed block');
  const [jwt, seed] = blocks as [string, string];
  if (jwt.split('.').length !== 3) refuse('the first block is not a JWT');
  try {
    nkeys.fromSeed(new TextEncoder().encode(seed));
  } catch (err) {
    refuse('the second block is not an nkey seed', err);
  }
  return text;
}

async function _withDeadline(attempt: Promise<NatsConnection>, timeoutMs: number): Promise<NatsConnection> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new _Late(timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([attempt, late]);
  } catch (err) {
    // A connection that completes after the deadline is nobody's: close it when it comes.
    if (err instanceof _Late) attempt.then((nc) => nc.close(), () => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

class _Late extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/** One error for a first connection that failed everywhere: each URL and why. */
function _failure(failures: _Failure[], cause: unknown): LamplighterError {
  const tried = failures.map((f) => `${f.url} (${f.reason})`).join(', ');
  const detail = { servers: failures.map(({ url, reason }) => ({ url, reason })) };
  if (failures.every((f) => f.refusedCredentials)) {
    return new LamplighterError(ErrorCodes.UNAUTHORIZED, `Cannot join the cluster: ${_refused}; tried ${tried}`, { cause, detail });
  }
  const message = `Cannot join the cluster: no NATS server accepted the connection; tried ${tried}`;
  return new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, message, { cause, detail });
}

const _refused = 'NATS refused the credentials: check --nats-token/--nats-creds';

// Alerts a server sends when a client certificate is missing or not to its liking.
const _clientCertAlerts = [
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
];

// Node's codes for a server certificate that does not chain to a trusted CA.
const _untrustedServerCodes = [
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
];

/** Why one dial failed, in words that point at the flag to fix. */
function _reason(err: unknown, url: string, tls: _TlsUse): { reason: string; refusedCredentials: boolean } {
  const chain: Error[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length < 5; e = e.cause) chain.push(e);
  const codes = chain.map((e) => (e as NodeJS.ErrnoException).code ?? '');
  const text = chain.map((e) => `${e.name} ${e.message}`).join(' / ');
  const has = (...needles: string[]): boolean => needles.some((n) => codes.includes(n) || text.includes(n));
  const reason = (r: string, refusedCredentials = false) => ({ reason: r, refusedCredentials });
  if (err instanceof _Late) return reason(err.message);
  if (/authorization violation|AuthorizationError/i.test(text)) return reason(_refused, true);
  // Servers answer a missing and an untrusted client certificate with the same alert; what was sent tells them apart.
  if (has(..._clientCertAlerts)) {
    return reason(
      tls.gaveCert
        ? "TLS handshake failed: the server refused this node's client certificate; is --nats-cert signed by a CA the server trusts?"
        : 'TLS handshake failed: the server requires a client certificate; give --nats-cert and --nats-key',
    );
  }
  if (has(..._untrustedServerCodes)) {
    return reason(
      "TLS handshake failed: the server's certificate is not signed by a CA this node trusts; give the servers' CA with --nats-ca",
    );
  }
  if (has('CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID')) {
    return reason("TLS handshake failed: the server's certificate is out of its validity dates");
  }
  if (has('ERR_TLS_CERT_ALTNAME_INVALID')) {
    return reason(`TLS handshake failed: the server's certificate does not name ${new URL(url).hostname}`);
  }
  if (/does not support 'tls'|tls.*not available/i.test(text)) {
    return reason('TLS was asked for (tls:// or --nats-ca/--nats-cert) but the server does not offer it');
  }
  // A server that rejects a client certificate after TLS 1.3's handshake may just drop the connection.
  if (tls.required && tls.gaveCert && has('ECONNRESET', 'EPIPE')) {
    return reason(
      'the connection was dropped right after the TLS handshake: the server probably refused ' +
        "this node's client certificate; is --nats-cert signed by a CA the server trusts?",
    );
  }
  if (has('ECONNREFUSED', 'connection refused')) return reason('connection refused: is nats-server running and listening there?');
  if (has('ENOTFOUND', 'EAI_AGAIN')) return reason('host not found');
  if (has('EHOSTUNREACH', 'ENETUNREACH')) return reason('host unreachable');
  if (chain.some((e) => e.name === 'TimeoutError')) return reason('no answer in time');
  const last = chain.at(-1);
  return reason(last ? last.message : String(err));
}

function _forwardStatus(nc: NatsConnection, onStatus: (event: ClusterConnectionStatus) => void): void {
  void (async () => {
    for await (const status of nc.status()) {
      // Pings come every interval and say nothing a log needs.
      if (status.type === 'ping') continue;
      const data = _statusData(status);
      try {
        onStatus(data === undefined || data === '' ? { type: status.type } : { type: status.type, data });
      } catch {
        // A failing listener must not stop later events from being told.
      }
    }
  })();
}

function _statusData(status: Status): string | undefined {
  switch (status.type) {
    case 'disconnect':
    case 'reconnect':
    case 'ldm':
      return status.server;
    case 'error':
      return status.error.message;
    case 'update':
      return [...(status.added ?? []).map((s) => `+${s}`), ...(status.deleted ?? []).map((s) => `-${s}`)].join(' ');
    case 'slowConsumer':
      return `${status.sub.getSubject()} (${status.pending} pending)`;
    default:
      return undefined;
  }
}
