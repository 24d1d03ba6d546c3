// State: the artifact store (content-addressed blobs and immutable revisions).
export { FileStore, digestOf } from './file-store.js';
export type { ArtifactStore, Revision, RevisionInput } from './file-store.js';
export { writeFileAtomic, removeTempLeftovers } from './atomic-file.js';
