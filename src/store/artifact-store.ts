// The store's interface and the shapes it reads, writes and reports; implementations plug in.
import type { LamplighterError } from '../errors/index.js';

/** One committed revision of an app. */
export interface Revision {
  app: string;
  number: number;
  /** ISO time of the commit. */
  createdAt: string;
  /** The manifest text as deployed. */
  manifest: string;
  /** Artifact path (as named in the manifest) → sha256 digest. */
  artifacts: Record<string, string>;
  /** Directory the app was deployed from; process functions run there. */
  appDir?: string;
}

/** What a deploy commits; the store assigns the number and time. */
export type RevisionInput = Pick<Revision, 'manifest' | 'artifacts' | 'appDir'>;

/** What kind of file was found damaged: a revision, an app's `current` pointer, a blob. */
export type DamageKind = 'revision' | 'pointer' | 'blob';

/** A damaged file found while reading the store. */
export interface DamageReport {
  kind: DamageKind;
  /** Where it is: a file's absolute path, or in JetStream `kv:<bucket>/<key>` or `obj:<bucket>/<name>`. */
  file: string;
  /** What is wrong with it, e.g. "is not valid JSON (Unexpected end of JSON input)". */
  reason: string;
  /** Where a damaged blob was moved, so the next upload of its digest can replace it. */
  movedTo?: string;
}

/** A write the store could not make (a full disk, an I/O error); its temp file is already removed. */
export interface WriteFailure {
  file: string;
  /** What was being written, e.g. "revision 3 of app 'hello'". */
  what: string;
  /** The system error code, e.g. ENOSPC. */
  code: string;
  /** The error the caller receives (LL_STORAGE_FULL for a full disk). */
  error: LamplighterError;
}

/** Who hears about damaged files and failed writes: the node logs and counts them. */
export interface StoreEvents {
  /** A file read back damaged; each is reported once until it is rewritten. */
  damaged?(report: DamageReport): void;
  /** A write failed. */
  writeFailed?(failure: WriteFailure): void;
}

/** What the store holds of an app, as a node restores it. */
export interface AppRecord {
  app: string;
  /** The revision the `current` pointer names, when it names a number. */
  current: number | undefined;
  /** Why the current revision cannot be read, when it cannot (the pointer or its revision file is damaged). */
  damage: string | undefined;
  /** Every intact revision, oldest first. */
  revisions: Revision[];
}

/** What a commit expects to replace, so that two deploys racing for one app cannot both win. */
export interface CommitOptions {
  /**
   * The revision number the caller saw as current (null: none). When the pointer names another
   * by the time of the commit, nothing is committed and the commit fails with LL_DEPLOY_CONFLICT.
   * @default undefined (no check)
   */
  expectCurrent?: number | null;
}

/** An app's pointer as changed by a commit, a rollback or a remove, on this node or another. */
export interface PointerChange {
  app: string;
  /** The revision now current; undefined when the app was removed. */
  current: number | undefined;
}

/** Blobs and revisions, embedded or clustered. Everything read is verified; damage is reported. */
export interface ArtifactStore {
  /** Whether the blob is stored intact; a damaged one is reported and counts as absent. */
  hasBlob(digest: string): Promise<boolean>;
  /** Stores bytes (replacing a damaged copy); when `digest` is given it must match. Resolves with the digest. */
  putBlob(bytes: Uint8Array, digest?: string): Promise<string>;
  /** The blob's bytes, verified against the digest (LL_NOT_FOUND, or LL_STORE_DAMAGED). */
  getBlob(digest: string): Promise<Buffer>;
  /** Commits a new revision and makes it current: one compare-and-set of the pointer. */
  commit(app: string, input: RevisionInput, options?: CommitOptions): Promise<Revision>;
  /** The current revision, or undefined when there is none or it is damaged (see {@link record}). */
  current(app: string): Promise<Revision | undefined>;
  /** The pointer, its damage if any, and every intact revision of an app; undefined if nothing was committed. */
  record(app: string): Promise<AppRecord | undefined>;
  /** Every intact revision, oldest first (damaged ones are reported and left out). */
  revisions(app: string): Promise<Revision[]>;
  /** One revision (LL_NOT_FOUND, or LL_STORE_DAMAGED). */
  revision(app: string, number: number): Promise<Revision>;
  /** Points `current` at an existing intact revision (with the same check as {@link commit}). */
  setCurrent(app: string, number: number, options?: CommitOptions): Promise<Revision>;
  removeApp(app: string): Promise<void>;
  /** Every app with a `current` pointer, damaged or not. */
  apps(): Promise<string[]>;
  /**
   * Optional (shared stores): calls `listener` for every pointer change made by any node, this
   * one included, after the ones already seen; returns a function that stops it.
   */
  watch?(listener: (change: PointerChange) => void): () => void;
  /** Optional: releases what the store holds open. */
  close?(): Promise<void>;
}
