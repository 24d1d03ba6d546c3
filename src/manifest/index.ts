// The app manifest (lamplighter.toml): parsing, validation and the typed specs.
export { MANIFEST_FILE, parseManifest, validateManifest, loadManifest } from './manifest.js';
export type { AppManifest, FunctionSpec, FunctionLimits, FunctionScale, Placeholder, RuntimeKind, Isolation, BreakerSpec, BreakerPartition } from './manifest.js';
export { BreakerDefaults, IsolationDefaults } from './schema.js';
export { readArtifact } from './read-artifact.js';
