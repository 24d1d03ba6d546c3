// State: the artifact store (content-addressed blobs and immutable revisions, verified on read).
export { FileStore, digestOf } from './file-store.js';
export type { FileStoreOptions } from './file-store.js';
export type { ArtifactStore, AppRecord, CommitOptions, PointerChange, DamageKind, DamageReport, Revision, RevisionInput, StoreEvents, WriteFailure } from './artifact-store.js';
export { writeFileAtomic, removeTempLeftovers } from './atomic-file.js';
export { nodeStoreFs } from './store-fs.js';
export type { StoreFs } from './store-fs.js';
export { JetStreamStore, DEFAULT_STORE_PREFIX, DEFAULT_STORE_TIMEOUT_MS } from './jetstream-store.js';
export type { JetStreamStoreOptions } from './jetstream-store.js';
