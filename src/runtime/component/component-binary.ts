// Reads the memory declarations of the core modules inside a transpiled component, to cap and check them.
import { ModuleError } from '../../errors/index.js';
import { binaryKind, capMemory, memoryDeclaration, WASM_PAGE } from '../wasm/index.js';
import { exposeCoreState } from './core-state-exports.js';

/** What a core module says about linear memory. */
export interface CoreMemoryInfo {
  /** True when the module imports its memory (it then shares another module's). */
  importsMemory: boolean;
  /** Initial pages of the memory the module defines itself, if any. */
  definedInitialPages: number | undefined;
}

/** Reads the import and memory sections of a core module. */
export function coreMemoryInfo(bytes: Uint8Array): CoreMemoryInfo {
  if (binaryKind(bytes) !== 'module') throw new ModuleError('A core module inside the component is not a WebAssembly module');
  const declared = memoryDeclaration(bytes);
  return { importsMemory: declared.imported, definedInitialPages: declared.defined?.initialPages };
}

/**
 * Caps the linear memory a core module defines at `limitBytes` (modules that import their memory are
 * left as they are: they share the capped one). Throws a ModuleError when the initial memory is over it.
 */
export function capCoreMemory(bytes: Uint8Array, limitBytes: number): Uint8Array {
  const info = coreMemoryInfo(bytes);
  if (info.importsMemory || info.definedInitialPages === undefined) return bytes;
  if (info.definedInitialPages * WASM_PAGE > limitBytes) {
    throw new ModuleError(
      `The component starts with ${info.definedInitialPages * WASM_PAGE} bytes of linear memory, over the limit of ${limitBytes} bytes (limits.memory)`,
    );
  }
  return capMemory(bytes, limitBytes).bytes;
}

/**
 * Compiles a core module as instances run it: memory capped at `limitBytes`, and its globals,
 * tables and memory exported (see exposeCoreState) so that an instance can be restored.
 */
export function compileCoreModule(bytes: Uint8Array, limitBytes: number): Promise<WebAssembly.Module> {
  return WebAssembly.compile(exposeCoreState(capCoreMemory(bytes, limitBytes)) as Uint8Array<ArrayBuffer>);
}
