// Reads just enough of a WebAssembly binary to judge it at deploy time and to cap its linear memory.
import { ModuleError } from '../../errors/index.js';
import { readSections as sectionsOf, readU32 as u32At, writeU32, type Section } from './wasm-encoding.js';

/** A binary that is not the WebAssembly it claims to be. */
const malformed = (what: string): ModuleError => new ModuleError(`Malformed WebAssembly binary: ${what}`);
const readU32 = (bytes: Uint8Array, offset: number): [value: number, next: number] => u32At(bytes, offset, malformed);
const readSections = (bytes: Uint8Array): Section[] => sectionsOf(bytes, malformed);

/** Bytes in one WebAssembly page. */
export const WASM_PAGE = 65_536;

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;

/** The kind of binary a file holds, judged by its header. */
export type BinaryKind = 'module' | 'component' | 'unknown';

/** Tells a core module from a component (or neither) by the 8-byte header. */
export function binaryKind(bytes: Uint8Array): BinaryKind {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) return 'unknown';
  // Core modules are version 1 layer 0; components carry layer 1 in bytes 6..7.
  if (bytes[4] === 1 && bytes[5] === 0 && bytes[6] === 0 && bytes[7] === 0) return 'module';
  if (bytes[6] === 1 && bytes[7] === 0) return 'component';
  return 'unknown';
}

/** Limits of a linear memory as declared in the binary. */
export interface MemoryLimits {
  initialPages: number;
  maximumPages: number | undefined;
}

/** The result of capping a module's memory. */
export interface CappedModule {
  /** The module bytes with the memory maximum set to the cap. */
  bytes: Uint8Array;
  /** The memory as the module declared it, before capping. */
  declared: MemoryLimits | undefined;
}

function readLimits(bytes: Uint8Array, pos: number, what: string): [MemoryLimits, number] {
  const flags = bytes[pos++] as number;
  if (flags & 0x02) throw new ModuleError(`${what} is shared; shared memories are not supported`);
  if (flags & 0x04) throw new ModuleError(`${what} is 64-bit; only 32-bit memories are supported`);
  const [initialPages, afterMin] = readU32(bytes, pos);
  if (flags & 0x01) {
    const [maximumPages, afterMax] = readU32(bytes, afterMin);
    return [{ initialPages, maximumPages }, afterMax];
  }
  return [{ initialPages, maximumPages: undefined }, afterMin];
}

function skipName(bytes: Uint8Array, pos: number): number {
  const [len, next] = readU32(bytes, pos);
  return next + len;
}

/** What a core module says about linear memory. */
export interface MemoryDeclaration {
  /** True when the module imports a memory (it then uses the host's or another module's). */
  imported: boolean;
  /** The memory the module defines itself, if any. */
  defined: MemoryLimits | undefined;
}

function importsMemory(bytes: Uint8Array, sections: readonly Section[]): boolean {
  const imports = sections.find((s) => s.id === SECTION_IMPORT);
  if (!imports) return false;
  let [count, pos] = readU32(bytes, imports.contentStart);
  let found = false;
  for (; count > 0; count--) {
    const moduleEnd = skipName(bytes, pos);
    const nameEnd = skipName(bytes, moduleEnd);
    const kind = bytes[nameEnd] as number;
    pos = nameEnd + 1;
    // Skip the import's descriptor: function type index, table, memory or global.
    if (kind === 0x00) pos = readU32(bytes, pos)[1];
    else if (kind === 0x01) pos = readLimits(bytes, pos + 1, 'table')[1];
    else if (kind === 0x02) {
      found = true;
      pos = readLimits(bytes, pos, 'An imported memory')[1];
    } else if (kind === 0x03) pos += 2;
    else if (kind === 0x04) pos = readU32(bytes, pos + 1)[1];
    else throw new ModuleError(`Malformed WebAssembly binary: unknown import kind ${kind}`);
  }
  return found;
}

/** Reads whether a core module imports a memory and what memory it defines. */
export function memoryDeclaration(bytes: Uint8Array): MemoryDeclaration {
  if (binaryKind(bytes) !== 'module') throw new ModuleError('Not a WebAssembly core module (bad magic number or version)');
  const sections = readSections(bytes);
  const memory = sections.find((s) => s.id === SECTION_MEMORY);
  let defined: MemoryLimits | undefined;
  if (memory) {
    const [count, limitsAt] = readU32(bytes, memory.contentStart);
    if (count > 1) throw new ModuleError('The module defines more than one linear memory');
    if (count === 1) defined = readLimits(bytes, limitsAt, 'The linear memory')[0];
  }
  return { imported: importsMemory(bytes, sections), defined };
}

/**
 * Sets the maximum of the module's own linear memory to `limitBytes`, so `memory.grow` past the
 * limit fails inside the module (malloc returns NULL) instead of taking host memory.
 * Rejects modules whose initial memory is already over the limit; a module that defines no
 * memory is returned as it is.
 */
export function capMemory(bytes: Uint8Array, limitBytes: number): CappedModule {
  if (binaryKind(bytes) !== 'module') throw new ModuleError('Not a WebAssembly core module (bad magic number or version)');
  const limitPages = Math.floor(limitBytes / WASM_PAGE);
  const sections = readSections(bytes);

  const memory = sections.find((s) => s.id === SECTION_MEMORY);
  if (!memory) return { bytes, declared: undefined };
  const [count, limitsAt] = readU32(bytes, memory.contentStart);
  if (count === 0) return { bytes, declared: undefined };
  if (count > 1) throw new ModuleError('The module defines more than one linear memory');
  const [declared, limitsEnd] = readLimits(bytes, limitsAt, 'The linear memory');
  if (declared.initialPages > limitPages) {
    throw new ModuleError(
      `The module declares ${declared.initialPages * WASM_PAGE} bytes of initial memory, over the limit of ${limitPages * WASM_PAGE} bytes (limits.memory)`,
    );
  }
  const maximum = declared.maximumPages === undefined ? limitPages : Math.min(declared.maximumPages, limitPages);
  const content = [...writeU32(1), 0x01, ...writeU32(declared.initialPages), ...writeU32(maximum)];
  const section = [SECTION_MEMORY, ...writeU32(content.length), ...content];
  const out = new Uint8Array(bytes.length - (memory.end - memory.start) + section.length);
  out.set(bytes.subarray(0, memory.start), 0);
  out.set(section, memory.start);
  out.set(bytes.subarray(memory.end), memory.start + section.length);
  // Keep the check honest: the rewritten section must end where the old contents did.
  if (limitsEnd !== memory.end) throw new ModuleError('Malformed WebAssembly binary: memory section has trailing bytes');
  return { bytes: out, declared };
}

/** Module and field name under which a module's linear memory is imported after {@link importMemory}. */
export const MEMORY_IMPORT = { module: 'lamplighter', name: 'memory' } as const;

/** A module whose memory the host provides, so a zeroed memory can be reused by the next instance. */
export interface MemoryImportingModule {
  bytes: Uint8Array;
  initialPages: number;
  maximumPages: number;
}

const SECTION_ORDER: Readonly<Record<number, number>> = { 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13 };

function encodeName(text: string): number[] {
  const bytes = [...Buffer.from(text, 'utf8')];
  return [...writeU32(bytes.length), ...bytes];
}

/**
 * Turns the module's own memory (already capped) into an import of {@link MEMORY_IMPORT}.
 * A fresh instance over a zeroed memory is exactly a fresh instance — the data segments are
 * written again at instantiation — but the host skips mapping and faulting in new pages.
 */
export function importMemory(bytes: Uint8Array): MemoryImportingModule {
  const sections = readSections(bytes);
  const memory = sections.find((s) => s.id === SECTION_MEMORY);
  if (!memory) throw new ModuleError('The module defines no linear memory');
  const [count, limitsAt] = readU32(bytes, memory.contentStart);
  if (count !== 1) throw new ModuleError('The module must define exactly one linear memory');
  const [limits] = readLimits(bytes, limitsAt, 'The linear memory');
  if (limits.maximumPages === undefined) throw new ModuleError('The linear memory has no maximum; cap it first');
  const entry = [...encodeName(MEMORY_IMPORT.module), ...encodeName(MEMORY_IMPORT.name), 0x02, 0x01, ...writeU32(limits.initialPages), ...writeU32(limits.maximumPages)];
  const imports = sections.find((s) => s.id === SECTION_IMPORT);
  let importSection: number[];
  if (imports) {
    const [n, entriesAt] = readU32(bytes, imports.contentStart);
    const content = [...writeU32(n + 1), ...bytes.subarray(entriesAt, imports.end), ...entry];
    importSection = [SECTION_IMPORT, ...writeU32(content.length), ...content];
  } else {
    const content = [...writeU32(1), ...entry];
    importSection = [SECTION_IMPORT, ...writeU32(content.length), ...content];
  }
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let placed = false;
  for (const section of sections) {
    if (section.id === SECTION_MEMORY) continue;
    if (section.id === SECTION_IMPORT) {
      parts.push(Uint8Array.from(importSection));
      placed = true;
      continue;
    }
    // With no import section, the new one goes before the first section that must follow it.
    if (!placed && section.id !== 0 && (SECTION_ORDER[section.id] ?? 0) > SECTION_ORDER[SECTION_IMPORT]!) {
      parts.push(Uint8Array.from(importSection));
      placed = true;
    }
    parts.push(bytes.subarray(section.start, section.end));
  }
  if (!placed) parts.push(Uint8Array.from(importSection));
  return { bytes: Buffer.concat(parts), initialPages: limits.initialPages, maximumPages: limits.maximumPages };
}
