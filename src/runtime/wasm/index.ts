// WebAssembly runtime: WAGI modules run in a pool of sandbox worker threads, fresh per request.
export { SandboxPool } from './sandbox-pool.js';
export type { SandboxPoolOptions, SandboxJob, SandboxResult, SandboxWorkerView } from './sandbox-pool.js';
export { compileWagiModule, createWagiFactory } from './wagi-runtime.js';
export type { CompiledWagiModule, WagiFactory, WagiFactoryOptions } from './wagi-runtime.js';
export { manifestEnvPrefix, parseWagiOutput, wagiArgs, wagiEnv } from './wagi-cgi.js';
export type { WagiEnvOptions } from './wagi-cgi.js';
export { packRunInput } from './sandbox-protocol.js';
export { binaryKind, capMemory, memoryDeclaration, WASM_PAGE } from './wasm-binary.js';
export type { BinaryKind, MemoryLimits, CappedModule, MemoryDeclaration } from './wasm-binary.js';
export { encodeCustomSection, readCustomSection, readSections, readU32, skipLeb, writeU32 } from './wasm-encoding.js';
export type { Malformed, Section } from './wasm-encoding.js';
export { ConfinedDir } from './wasi-files.js';
export type { ConfinedEntry, Unreachable } from './wasi-files.js';
