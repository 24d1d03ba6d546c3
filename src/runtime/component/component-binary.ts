// Reads the memory declarations of the core modules inside a transpiled component, to cap and check them.
import { ModuleError } from '../../errors/index.js';
import { binaryKind, capMemory, WASM_PAGE } from '../wasm/index.js';

const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;

function readU32(bytes: Uint8Array, offset: number): [value: number, next: number] {
  let result = 0;
  let shift = 0;
  let pos = offset;
  for (;;) {
    if (pos >= bytes.length || shift > 28) throw new ModuleError('Malformed core module in component: truncated LEB128 integer');
    const byte = bytes[pos++] as number;
    result |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) break;
    shift += 7;
  }
  return [result >>> 0, pos];
}

function skipLimits(bytes: Uint8Array, pos: number): number {
  const flags = bytes[pos] as number;
  let next = readU32(bytes, pos + 1)[1];
  if (flags & 0x01) next = readU32(bytes, next)[1];
  return next;
}

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
  let importsMemory = false;
  let definedInitialPages: number | undefined;
  let pos = 8;
  while (pos < bytes.length) {
    const id = bytes[pos] as number;
    const [size, contentStart] = readU32(bytes, pos + 1);
    const end = contentStart + size;
    if (end > bytes.length) throw new ModuleError(`Malformed core module in component: section ${id} runs past the end`);
    if (id === SECTION_IMPORT) {
      let [count, at] = readU32(bytes, contentStart);
      for (; count > 0; count--) {
        const [moduleLen, afterModuleLen] = readU32(bytes, at);
        const [nameLen, afterNameLen] = readU32(bytes, afterModuleLen + moduleLen);
        const kind = bytes[afterNameLen + nameLen] as number;
        at = afterNameLen + nameLen + 1;
        if (kind === 0x00) at = readU32(bytes, at)[1];
        else if (kind === 0x01) at = skipLimits(bytes, at + 1);
        else if (kind === 0x02) {
          importsMemory = true;
          at = skipLimits(bytes, at);
        } else if (kind === 0x03) at += 2;
        else if (kind === 0x04) at = readU32(bytes, at + 1)[1];
        else throw new ModuleError(`Malformed core module in component: unknown import kind ${kind}`);
      }
    } else if (id === SECTION_MEMORY) {
      const [count, at] = readU32(bytes, contentStart);
      if (count > 0) definedInitialPages = readU32(bytes, at + 1)[0];
    }
    pos = end;
  }
  return { importsMemory, definedInitialPages };
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
