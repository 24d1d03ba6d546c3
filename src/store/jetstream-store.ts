// The clustered artifact store: blobs in a JetStream Object Store, revisions and pointers in KV, one compare-and-set per deploy.
//
// Buckets (names after `prefix`, default "lamplighter"):
//   <prefix>-blobs      Object Store   <sha256 hex>  artifact bytes
//   <prefix>-revisions  KV             <app>.<n>     one immutable revision each (the file store's JSON)
//                                      <app>.last    the highest number handed out, so none repeats
//   <prefix>-pointers   KV             <app>         the revision being served, as a decimal number
// A deploy writes its blobs, then its revision, then moves the pointer with one compare-and-set
// against the pointer entry it read: of two racing deploys one wins, the other removes its
// revision and fails with LL_DEPLOY_CONFLICT. The pointer never names a revision not yet written.
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import type { AppRecord, ArtifactStore, CommitOptions, PointerChange, Revision, RevisionInput, StoreEvents } from './artifact-store.js';
import { DamageLog } from './damage-log.js';
import { checkExpected, deployConflict, type PointerMove } from './deploy-conflict.js';
import { JetStreamBlobs } from './jetstream-blobs.js';
import { PointerFeed } from './pointer-feed.js';
import { parsePointer, parseRevision, type FileRead } from './revision-file.js';

/** Options for {@link JetStreamStore.open}. */
export interface JetStreamStoreOptions {
  /** Start of every bucket name: `<prefix>-blobs`, `<prefix>-revisions`, `<prefix>-pointers`. @default DEFAULT_STORE_PREFIX */
  prefix?: string;
  /** Who hears about damaged entries. @default {} (nobody) */
  events?: StoreEvents;
  /** Copies JetStream keeps of each bucket (1, 3 or 5; at most the servers in the cluster). Applies when a bucket is created. @default 1 */
  replicas?: number;
  /** How long one JetStream request may take before the operation fails, in ms. @default DEFAULT_STORE_TIMEOUT_MS */
  timeoutMs?: number;
}

/** How long one JetStream request may take unless told otherwise, in ms. */
export const DEFAULT_STORE_TIMEOUT_MS = 5000;

/** The bucket prefix a store uses unless told otherwise. */
export const DEFAULT_STORE_PREFIX = 'lamplighter';

const APP = /^[a-z][a-z0-9-]*$/;
/** How often a commit may lose the race for a revision number before it gives up. */
const NUMBER_ATTEMPTS = 50;

function notFound(message: string): LamplighterError {
  return new LamplighterError(ErrorCodes.NOT_FOUND, message);
}

/** Whether a write was refused because the key moved on since it was read. */
function lostRace(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

/** Whether an entry holds a value (not a delete or purge marker). */
function live(entry: KvEntry | null): entry is KvEntry {
  return entry !== null && entry.operation === 'PUT';
}

/** {@link ArtifactStore} on NATS JetStream, shared by every node connected to it. */
export class JetStreamStore implements ArtifactStore {
  /** The three bucket names. */
  readonly buckets: { blobs: string; revisions: string; pointers: string };
  readonly #blobs: JetStreamBlobs;
  readonly #nc: NatsConnection;
  readonly #revisionKv: KV;
  readonly #pointerKv: KV;
  readonly #damage: DamageLog;
  /** Set by {@link open} before the store is handed out. */
  #feed: PointerFeed | undefined;

  private constructor(nc: NatsConnection, buckets: JetStreamStore['buckets'], blobs: JetStreamBlobs, revisions: KV, pointers: KV, damage: DamageLog) {
    this.#nc = nc;
    this.buckets = buckets;
    this.#blobs = blobs;
    this.#revisionKv = revisions;
    this.#pointerKv = pointers;
    this.#damage = damage;
  }

  /**
   * Opens the store on `nc`, creating its buckets when they are missing. The connection stays the
   * caller's: the store never closes it, and keeps working across its reconnects.
   */
  static async open(nc: NatsConnection, options: JetStreamStoreOptions = {}): Promise<JetStreamStore> {
    const prefix = options.prefix ?? DEFAULT_STORE_PREFIX;
    if (!/^[A-Za-z0-9_-]+$/.test(prefix)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `'${prefix}' cannot start a JetStream bucket name: use letters, digits, '-' and '_'`);
    const replicas = options.replicas ?? 1;
    const buckets = { blobs: `${prefix}-blobs`, revisions: `${prefix}-revisions`, pointers: `${prefix}-pointers` };
    const jsm = await requireJetStream(nc, options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS);
    const damage = new DamageLog(options.events ?? {});
    // Reads go to the stream leader (no direct get), so a node reads what another just wrote.
    const js = jetstream(nc, { timeout: options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS });
    const kvm = new Kvm(js);
    const revisions = await kvm.create(buckets.revisions, { replicas, history: 1, allow_direct: false, description: 'Lamplighter app revisions' });
    const pointers = await kvm.create(buckets.pointers, { replicas, history: 5, allow_direct: false, description: 'Lamplighter current revision of each app' });
    const os = await new Objm(js).create(buckets.blobs, { replicas, description: 'Lamplighter artifacts by sha256' });
    const store = new JetStreamStore(nc, buckets, new JetStreamBlobs(os, jsm, buckets.blobs, damage), revisions, pointers, damage);
    store.#feed = await PointerFeed.start(pointers, nc, (entry) => store.#changeOf(entry));
    return store;
  }

  #checkApp(app: string): void {
    if (!APP.test(app)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `'${app}' is not an app name`);
  }

  #pointerName(app: string): string {
    return `kv:${this.buckets.pointers}/${app}`;
  }

  #revisionName(app: string, number: number): string {
    return `kv:${this.buckets.revisions}/${app}.${number}`;
  }

  /** Runs one operation; a failure of NATS itself becomes LL_UPSTREAM_UNAVAILABLE saying what could not be done. */
  async #guard<T>(what: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (err) {
      if (err instanceof LamplighterError) throw err;
      throw new LamplighterError(
        ErrorCodes.UPSTREAM_UNAVAILABLE,
        `Cannot ${what}: the artifact store on NATS (${this.#nc.getServer()}) failed: ${(err as Error).message}. Check that the NATS servers are up and run JetStream, then try again`,
        { cause: err, retryAfter: 1 },
      );
    }
  }

  hasBlob(digest: string): Promise<boolean> {
    return this.#guard(`check the artifact ${digest}`, () => this.#blobs.has(digest));
  }

  putBlob(bytes: Uint8Array, digest?: string): Promise<string> {
    return this.#guard('store an artifact', () => this.#blobs.put(bytes, digest));
  }

  getBlob(digest: string): Promise<Buffer> {
    return this.#guard(`read the artifact ${digest}`, () => this.#blobs.get(digest));
  }

  commit(app: string, input: RevisionInput, options: CommitOptions = {}): Promise<Revision> {
    return this.#guard(`deploy app '${app}'`, () => this.#commit(app, input, options));
  }

  current(app: string): Promise<Revision | undefined> {
    return this.#guard(`read app '${app}'`, () => this.#current(app));
  }

  record(app: string): Promise<AppRecord | undefined> {
    return this.#guard(`read app '${app}'`, () => this.#record(app));
  }

  revisions(app: string): Promise<Revision[]> {
    return this.#guard(`read the revisions of app '${app}'`, () => this.#listRevisions(app));
  }

  revision(app: string, number: number): Promise<Revision> {
    return this.#guard(`read revision ${number} of app '${app}'`, () => this.#revision(app, number));
  }

  setCurrent(app: string, number: number, options: CommitOptions = {}): Promise<Revision> {
    return this.#guard(`roll app '${app}' back to revision ${number}`, () => this.#setCurrent(app, number, options));
  }

  removeApp(app: string): Promise<void> {
    return this.#guard(`remove app '${app}'`, () => this.#removeApp(app));
  }

  apps(): Promise<string[]> {
    return this.#guard('list the apps', () => this.#apps());
  }

  /** The pointer's number, reporting a pointer that holds none. */
  #pointerValue(app: string, entry: KvEntry): FileRead<number> {
    const read = parsePointer(entry.string());
    if (read.state === 'damaged') this.#damage.report('pointer', this.#pointerName(app), entry.revision, read.reason);
    return read;
  }

  /** The number the pointer entry names (undefined when absent, removed, or damaged). */
  #currentOf(app: string, entry: KvEntry | null): number | undefined {
    if (!live(entry)) return undefined;
    const read = this.#pointerValue(app, entry);
    return read.state === 'ok' ? read.value : undefined;
  }

  async #pointerNow(app: string): Promise<number | undefined> {
    return this.#currentOf(app, await this.#pointerKv.get(app));
  }

  /**
   * Moves the pointer from the entry read to `number`: one compare-and-set. Lost: the conflict,
   * naming the revision current now. Any other failure is thrown as it is (the write may have landed).
   */
  async #movePointer(app: string, read: KvEntry | null, number: number, move: PointerMove): Promise<void> {
    try {
      if (read) await this.#pointerKv.update(app, String(number), read.revision);
      else await this.#pointerKv.put(app, String(number), { previousSeq: 0 });
    } catch (err) {
      if (lostRace(err)) throw deployConflict({ app, current: await this.#pointerNow(app), move });
      throw err;
    }
    this.#damage.rewritten(this.#pointerName(app));
  }

  async #commit(app: string, input: RevisionInput, options: CommitOptions): Promise<Revision> {
    this.#checkApp(app);
    for (const [name, digest] of Object.entries(input.artifacts)) {
      if (!(await this.#blobs.exists(digest))) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Artifact '${name}' (${digest}) has not been uploaded`);
    }
    const pointer = await this.#pointerKv.get(app);
    const current = this.#currentOf(app, pointer);
    checkExpected({ app, current, move: { kind: 'deploy' } }, options);
    const revision = await this.#writeNext(app, current, (number) => ({ app, number, createdAt: new Date().toISOString(), manifest: input.manifest, artifacts: input.artifacts, ...(input.appDir ? { appDir: input.appDir } : {}) }));
    try {
      await this.#movePointer(app, pointer, revision.number, { kind: 'deploy' });
    } catch (err) {
      if (err instanceof LamplighterError) {
        // Lost the race: the revision was never current and goes. Its number stays used.
        await this.#revisionKv.purge(`${app}.${revision.number}`).catch(() => undefined);
        throw err;
      }
      // No answer is not a refusal: the switch may have landed, so the revision stays.
      throw new LamplighterError(
        ErrorCodes.UPSTREAM_UNAVAILABLE,
        `Cannot tell whether app '${app}' now serves revision ${revision.number}: NATS (${this.#nc.getServer()}) did not confirm the switch (${(err as Error).message}). Run \`lamplighter ls\` to see which revision is current`,
        { cause: err, retryAfter: 1 },
      );
    }
    return revision;
  }

  /**
   * Writes the revision `build(n)` under the next number of `app`. Numbers come from a
   * compare-and-set of `<app>.last`, so two racing commits never take the same one and a
   * rollback never makes one come back; a number whose entry is taken (revisions are immutable)
   * is passed over.
   */
  async #writeNext(app: string, current: number | undefined, build: (number: number) => Revision): Promise<Revision> {
    const key = `${app}.last`;
    for (let attempt = 0; attempt < NUMBER_ATTEMPTS; attempt++) {
      const entry = await this.#revisionKv.get(key);
      const recorded = live(entry) ? parsePointer(entry.string()) : undefined;
      // Without a usable counter, the numbers in use decide.
      const last = recorded?.state === 'ok' ? recorded.value : Math.max(0, ...(await this.#revisionNumbers(app)));
      const number = Math.max(last, current ?? 0) + 1;
      try {
        await this.#revisionKv.put(key, String(number), { previousSeq: entry?.revision ?? 0 });
        const revision = build(number);
        await this.#revisionKv.create(`${app}.${number}`, JSON.stringify(revision, null, 2));
        this.#damage.rewritten(this.#revisionName(app, number));
        return revision;
      } catch (err) {
        if (!lostRace(err)) throw err;
      }
    }
    throw new LamplighterError(ErrorCodes.DEPLOY_CONFLICT, `Cannot deploy app '${app}': other deploys took ${NUMBER_ATTEMPTS} revision numbers while this one tried; deploy again`);
  }

  /** Numbers of every revision entry of an app (intact or not), ascending. */
  async #revisionNumbers(app: string): Promise<number[]> {
    const numbers: number[] = [];
    for await (const key of await this.#revisionKv.keys(`${app}.*`)) {
      const tail = key.slice(app.length + 1);
      if (/^[1-9]\d{0,15}$/.test(tail)) numbers.push(Number(tail));
    }
    return numbers.sort((a, b) => a - b);
  }

  /** Reads one revision; damage is reported. */
  async #readRevision(app: string, number: number): Promise<FileRead<Revision>> {
    const entry = await this.#revisionKv.get(`${app}.${number}`);
    if (!live(entry)) return { state: 'missing' };
    const read = parseRevision(entry.string(), app, number);
    if (read.state === 'damaged') this.#damage.report('revision', this.#revisionName(app, number), entry.revision, read.reason);
    return read;
  }

  async #revision(app: string, number: number): Promise<Revision> {
    this.#checkApp(app);
    if (!Number.isSafeInteger(number) || number < 1) throw notFound(`App '${app}' has no revision ${number}`);
    const read = await this.#readRevision(app, number);
    if (read.state === 'ok') return read.value;
    if (read.state === 'missing') throw notFound(`App '${app}' has no revision ${number}`);
    throw new LamplighterError(ErrorCodes.STORE_DAMAGED, `Revision ${number} of app '${app}' is damaged: ${this.#revisionName(app, number)} ${read.reason}`);
  }

  async #listRevisions(app: string): Promise<Revision[]> {
    this.#checkApp(app);
    const out: Revision[] = [];
    for (const n of await this.#revisionNumbers(app)) {
      const read = await this.#readRevision(app, n);
      if (read.state === 'ok') out.push(read.value);
    }
    return out;
  }

  async #record(app: string): Promise<AppRecord | undefined> {
    this.#checkApp(app);
    const entry = await this.#pointerKv.get(app);
    if (!live(entry)) return undefined;
    const revisions = await this.#listRevisions(app);
    const pointer = this.#pointerValue(app, entry);
    if (pointer.state !== 'ok') return { app, current: undefined, damage: `${this.#pointerName(app)} ${pointer.state === 'damaged' ? pointer.reason : 'is missing'}`, revisions };
    const current = pointer.value;
    if (revisions.some((r) => r.number === current)) return { app, current, damage: undefined, revisions };
    const damage = await this.#currentDamage(app, entry, current);
    if (typeof damage !== 'string') return { app, current, damage: undefined, revisions: [...revisions, damage].sort((a, b) => a.number - b.number) };
    return { app, current, damage, revisions };
  }

  /** The current revision, or what is wrong with it (a pointer naming nothing is reported as the pointer's damage). */
  async #currentDamage(app: string, pointer: KvEntry, current: number): Promise<Revision | string> {
    const read = await this.#readRevision(app, current);
    if (read.state === 'ok') return read.value;
    if (read.state === 'missing') {
      const reason = `names revision ${current}, which does not exist`;
      this.#damage.report('pointer', this.#pointerName(app), pointer.revision, reason);
      return `${this.#pointerName(app)} ${reason}`;
    }
    return `${this.#revisionName(app, current)} ${read.reason}`;
  }

  async #current(app: string): Promise<Revision | undefined> {
    this.#checkApp(app);
    const entry = await this.#pointerKv.get(app);
    if (!live(entry)) return undefined;
    const pointer = this.#pointerValue(app, entry);
    if (pointer.state !== 'ok') return undefined;
    const found = await this.#currentDamage(app, entry, pointer.value);
    return typeof found === 'string' ? undefined : found;
  }

  async #setCurrent(app: string, number: number, options: CommitOptions): Promise<Revision> {
    this.#checkApp(app);
    const revision = await this.#revision(app, number);
    const pointer = await this.#pointerKv.get(app);
    const move: PointerMove = { kind: 'rollback', to: number };
    checkExpected({ app, current: this.#currentOf(app, pointer), move }, options);
    await this.#movePointer(app, pointer, number, move);
    return revision;
  }

  /**
   * Removes the pointer, then the revisions numbered up to the counter as it stood before: a
   * commit that took a number by then either moved the pointer first (its revision goes too) or
   * loses its compare-and-set to the removal; a later one keeps its revision. The counter stays,
   * so a new app of the same name never reuses a number another node may still hold.
   */
  async #removeApp(app: string): Promise<void> {
    this.#checkApp(app);
    const counter = await this.#revisionKv.get(`${app}.last`);
    const pointer = await this.#pointerKv.get(app);
    const numbers = await this.#revisionNumbers(app);
    if (!live(pointer) && numbers.length === 0) throw notFound(`No app named '${app}'`);
    const recorded = live(counter) ? parsePointer(counter.string()) : undefined;
    const upTo = Math.max(recorded?.state === 'ok' ? recorded.value : 0, ...numbers);
    if (live(pointer)) await this.#pointerKv.delete(app);
    for (const n of await this.#revisionNumbers(app)) {
      if (n <= upTo) await this.#revisionKv.purge(`${app}.${n}`);
    }
  }

  async #apps(): Promise<string[]> {
    const names: string[] = [];
    for await (const key of await this.#pointerKv.keys()) if (APP.test(key)) names.push(key);
    return names.sort();
  }

  /** Calls `listener` with every later pointer change made through any connection, this one included, in order. */
  watch(listener: (change: PointerChange) => void): () => void {
    return this.#feed?.listen(listener) ?? (() => undefined);
  }

  #changeOf(entry: KvEntry): PointerChange | undefined {
    const app = entry.key;
    if (!APP.test(app)) return undefined;
    if (!live(entry)) return { app, current: undefined };
    const read = this.#pointerValue(app, entry);
    // A pointer holding no number is reported; nodes keep serving what they serve.
    return read.state === 'ok' ? { app, current: read.value } : undefined;
  }

  /** Stops the watchers. The connection stays open: it is the caller's. */
  async close(): Promise<void> {
    await this.#feed?.close();
  }
}

/** Fails clearly when the server has no JetStream, instead of with a timeout or "no responders". */
async function requireJetStream(nc: NatsConnection, timeout: number): Promise<JetStreamManager> {
  const server = nc.getServer();
  try {
    return await jetstreamManager(nc, { timeout });
  } catch (err) {
    const cause = (err as Error).message;
    // The client names this error class but does not export it.
    const disabled = (err as Error).name === 'JetStreamNotEnabled' || (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.JetStreamNotEnabledForAccount);
    const message = disabled
      ? `Cannot open the artifact store on NATS at ${server}: JetStream is not enabled there (${cause}). Start nats-server with -js (or a jetstream {} block in its configuration)`
      : `Cannot open the artifact store on NATS at ${server}: JetStream did not answer (${cause}). Check that nats-server runs with -js and that this user may use JetStream`;
    throw new LamplighterError(ErrorCodes.INTERNAL, message, { cause: err });
  }
}
