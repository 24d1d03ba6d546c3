// The app manifest (lamplighter.toml): parsing, validation and the typed specs.
export { MANIFEST_FILE, parseManifest, validateManifest, loadManifest } from './manifest.js';
export type { AppManifest, FunctionSpec, FunctionLimits, FunctionScale, Placeholder, RuntimeKind, Isolation, BreakerSpec, BreakerPartition, VariableSpec } from './manifest.js';
export { parseEnvTemplate, referencedVariables, renderEnvTemplate, VARIABLE_NAME } from './env-template.js';
export type { EnvTemplate } from './env-template.js';
export { literalPath, parseRoute } from './route-pattern.js';
export type { RoutePattern, RouteSegment } from './route-pattern.js';
export { BreakerDefaults, IsolationDefaults } from './schema.js';
export { readArtifact } from './read-artifact.js';
export { SPIN_MANIFEST_FILE, translateSpinManifest } from './spin-manifest.js';
export { collectFunctionFiles, fileTargets } from './function-files.js';
export type { FileMount } from './function-files.js';
