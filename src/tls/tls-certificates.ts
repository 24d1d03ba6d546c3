// The certificates a TLS server answers with: chosen by SNI, reloaded when their files change.
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { SecureContext } from 'node:tls';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import type { Logger } from '../observability/index.js';
import { loadCertificate, type CertificateFiles, type CertificateFlags, type LoadedCertificate } from './certificate.js';
import { pickCertificate } from './server-names.js';

/** Options for {@link TlsCertificates.load}. */
export interface TlsCertificatesOptions {
  /** Where reloads are reported. @default no log */
  logger?: Pick<Logger, 'info' | 'warn'>;
  /** Reload when a certificate or key file changes on disk. @default true */
  watch?: boolean;
  /** Time a burst of file changes is left to settle before the reload. @default 200 */
  settleMs?: number;
  /** The flags that named the files, for messages. @default --tls-cert / --tls-key */
  flags?: CertificateFlags;
  /** Time a client has to complete its handshake, for the server that uses these certificates. @default 10_000 */
  handshakeTimeoutMs?: number;
}

/** What one {@link TlsCertificates.reload} did. */
export interface TlsReloadResult {
  /** Certificate files whose new contents are now served. */
  reloaded: string[];
  /** Certificates whose new files could not be used; the old ones are still served. */
  failed: Array<{ cert: string; message: string }>;
}

/** Default time a client has to complete its TLS handshake: a slow mobile link needs a few round trips. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Default time for a burst of file writes (certificate, then key) to settle. */
export const DEFAULT_TLS_SETTLE_MS = 200;

/**
 * One or more certificates, the first the default for clients that send no server name or one no
 * certificate names. New connections get what is current; open ones keep what they shook hands with.
 */
export class TlsCertificates {
  #current: LoadedCertificate[];
  readonly #options: TlsCertificatesOptions;
  readonly #listeners = new Set<() => void>();
  readonly #watchers: FSWatcher[] = [];
  #settle: NodeJS.Timeout | undefined;
  #reloading: Promise<TlsReloadResult> = Promise.resolve({ reloaded: [], failed: [] });
  #closed = false;
  /** Time a client has to complete its handshake. */
  readonly handshakeTimeoutMs: number;

  private constructor(current: LoadedCertificate[], options: TlsCertificatesOptions) {
    this.#current = current;
    this.#options = options;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  }

  /**
   * Loads every certificate, in order (the first is the default), and starts watching their
   * files. Throws LL_TLS_INVALID naming the first file that cannot be used.
   */
  static async load(files: readonly CertificateFiles[], options: TlsCertificatesOptions = {}): Promise<TlsCertificates> {
    if (files.length === 0) throw new LamplighterError(ErrorCodes.TLS_INVALID, 'TLS needs at least one certificate: give --tls-cert FILE --tls-key FILE');
    const loaded: LoadedCertificate[] = [];
    for (const pair of files) loaded.push(await loadCertificate(pair, options.flags));
    const certificates = new TlsCertificates(loaded, options);
    if (options.watch !== false) certificates.#watch();
    return certificates;
  }

  /** The certificates now served, in order. */
  get certificates(): readonly LoadedCertificate[] {
    return this.#current;
  }

  /** Key and certificate of the default (first) certificate, as `tls.createServer` takes them. */
  defaultCredentials(): { cert: Buffer; key: Buffer } {
    const first = this.#current[0]!;
    return { cert: first.cert, key: first.key };
  }

  /** The context for a client that names `serverName` (see {@link pickCertificate}). */
  contextFor(serverName: string): SecureContext {
    return this.#current[pickCertificate(this.#current, serverName)]!.context;
  }

  /** Calls `listener` after each reload that changed a certificate; returns a function that removes it. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Reads every file again and serves the certificates whose files changed. A pair that cannot be
   * used is logged and keeps its old certificate. Reloads run one at a time.
   */
  reload(): Promise<TlsReloadResult> {
    this.#reloading = this.#reloading.then(() => this.#reload());
    return this.#reloading;
  }

  /** Stops watching the files. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#settle);
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers.length = 0;
  }

  async #reload(): Promise<TlsReloadResult> {
    const result: TlsReloadResult = { reloaded: [], failed: [] };
    const next = [...this.#current];
    for (const [i, old] of this.#current.entries()) {
      try {
        const [cert, key] = await Promise.all([readFile(old.files.cert), readFile(old.files.key)]);
        if (cert.equals(old.cert) && key.equals(old.key)) continue;
        next[i] = await loadCertificate(old.files, this.#options.flags);
        result.reloaded.push(old.files.cert);
      } catch (err) {
        const message = err instanceof LamplighterError ? err.message : `Cannot read '${old.files.cert}' or '${old.files.key}': ${(err as Error).message}`;
        result.failed.push({ cert: old.files.cert, message });
        this.#options.logger?.warn({ cert: old.files.cert, key: old.files.key }, `TLS certificate not reloaded, the previous one is still served: ${message}`);
      }
    }
    if (result.reloaded.length === 0) return result;
    this.#current = next;
    for (const cert of result.reloaded) {
      const loaded = next.find((c) => c.files.cert === cert)!;
      this.#options.logger?.info({ cert, names: loaded.names, validTo: loaded.validTo }, 'TLS certificate reloaded');
    }
    for (const listener of this.#listeners) listener();
    return result;
  }

  /**
   * Watches the directories that hold the files rather than the files: a file replaced by a
   * rename (editors, `mv`, Kubernetes' secret volumes) is a new file a file watch would not see.
   */
  #watch(): void {
    const dirs = new Set<string>();
    for (const { files } of this.#current) {
      dirs.add(path.dirname(path.resolve(files.cert)));
      dirs.add(path.dirname(path.resolve(files.key)));
    }
    const settleMs = this.#options.settleMs ?? DEFAULT_TLS_SETTLE_MS;
    for (const dir of dirs) {
      const watcher = watch(dir, { persistent: false }, () => {
        if (this.#closed) return;
        // A certificate and its key are written one after the other: one reload once both are down.
        clearTimeout(this.#settle);
        this.#settle = setTimeout(() => void this.reload(), settleMs);
        this.#settle.unref();
      });
      watcher.on('error', (err) => this.#options.logger?.warn({ dir, err: err.message }, 'stopped watching a TLS certificate directory; reload with SIGHUP'));
      this.#watchers.push(watcher);
    }
  }
}
