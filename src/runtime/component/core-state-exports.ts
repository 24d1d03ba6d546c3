// Rewrites a core module to export its mutable state (globals, tables, memory), so a used instance can be put back as new.
import { ModuleError } from '../../errors/index.js';
import { encodeCustomSection, readSections as sectionsOf, readU32 as u32At, skipLeb as skipLebAt, writeU32, type Section } from '../wasm/index.js';
import { scanCode } from './core-code-scan.js';

/**
 * The rewrite's version: prepared components are cached with their modules rewritten, so a change
 * to what the rewrite or the code scan does must make new cache entries.
 */
export const STATE_REWRITE_VERSION = 1;

/** Prefix of the export names the rewrite adds; a component's own exports never start with it. */
export const STATE_EXPORT_PREFIX = '$lamplighter:';

/** Name of the custom section the rewrite adds: JSON {@link CoreStateFacts}. */
export const STATE_FACTS_SECTION = 'lamplighter:state';

/** What the rewrite learnt about a core module, kept inside it as a custom section. */
export interface CoreStateFacts {
  /** True when its code may change a table (then a used instance is never restored). */
  writesTables: boolean;
  /** Why, when writesTables. */
  reason?: string | undefined;
}

/** Reads the facts {@link exposeCoreState} recorded in a compiled module, if it went through it. */
export function coreStateFacts(module: WebAssembly.Module): CoreStateFacts | undefined {
  const [section] = WebAssembly.Module.customSections(module, STATE_FACTS_SECTION);
  if (!section) return undefined;
  return JSON.parse(Buffer.from(section).toString('utf8')) as CoreStateFacts;
}

const SECTION_IMPORT = 2;
const SECTION_TABLE = 4;
const SECTION_MEMORY = 5;
const SECTION_GLOBAL = 6;
const SECTION_EXPORT = 7;

/** Where each known section goes in a module, by id (the data count section, 12, sits before code). */
const SECTION_ORDER: Readonly<Record<number, number>> = { 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13 };

const EXPORT_TABLE = 0x01;
const EXPORT_MEMORY = 0x02;
const EXPORT_GLOBAL = 0x03;

function malformed(what: string): ModuleError {
  return new ModuleError(`A core module inside the component is malformed: ${what}`);
}

const readU32 = (bytes: Uint8Array, offset: number): [value: number, next: number] => u32At(bytes, offset, malformed);
const readSections = (bytes: Uint8Array): Section[] => sectionsOf(bytes, malformed);

const skipLeb = (bytes: Uint8Array, offset: number): number => skipLebAt(bytes, offset, malformed);
function skipName(bytes: Uint8Array, pos: number): number {
  const [len, next] = readU32(bytes, pos);
  return next + len;
}

function skipLimits(bytes: Uint8Array, pos: number): number {
  const flags = bytes[pos] as number;
  let next = skipLeb(bytes, pos + 1);
  if (flags & 0x01) next = skipLeb(bytes, next);
  return next;
}

/** Skips a value or reference type (including the typed-reference forms `(ref null? ht)`). */
function skipValType(bytes: Uint8Array, pos: number): number {
  const byte = bytes[pos] as number;
  if (byte === 0x63 || byte === 0x64) return skipLeb(bytes, pos + 1);
  return pos + 1;
}

/** Skips a constant expression up to and including its `end` (0x0b). */
function skipConstExpr(bytes: Uint8Array, offset: number): number {
  let pos = offset;
  for (;;) {
    if (pos >= bytes.length) throw malformed('unterminated constant expression');
    const op = bytes[pos++] as number;
    if (op === 0x0b) return pos;
    if (op === 0x41 || op === 0x42 || op === 0x23 || op === 0xd2) pos = skipLeb(bytes, pos);
    else if (op === 0x43) pos += 4;
    else if (op === 0x44) pos += 8;
    else if (op === 0xd0) pos = skipLeb(bytes, pos);
    else if (op === 0xfd) pos = skipLeb(bytes, pos) + 16;
    else if (op === 0xfb) pos = skipLeb(bytes, skipLeb(bytes, pos));
    else if (op >= 0x6a && op <= 0x7e) continue;
    else throw malformed(`unknown opcode 0x${op.toString(16)} in a constant expression`);
  }
}

/** Counts of imported entities, which come first in each index space. */
interface ImportCounts {
  tables: number;
  memories: number;
  globals: number;
}

function countImports(bytes: Uint8Array, section: Section | undefined): ImportCounts {
  const counts: ImportCounts = { tables: 0, memories: 0, globals: 0 };
  if (!section) return counts;
  let [count, pos] = readU32(bytes, section.contentStart);
  for (; count > 0; count--) {
    pos = skipName(bytes, skipName(bytes, pos));
    const kind = bytes[pos++] as number;
    if (kind === 0x00) pos = skipLeb(bytes, pos);
    else if (kind === 0x01) {
      counts.tables++;
      pos = skipLimits(bytes, skipValType(bytes, pos));
    } else if (kind === 0x02) {
      counts.memories++;
      pos = skipLimits(bytes, pos);
    } else if (kind === 0x03) {
      counts.globals++;
      pos = skipValType(bytes, pos) + 1;
    } else if (kind === 0x04) pos = skipLeb(bytes, pos + 1);
    else throw malformed(`unknown import kind ${kind}`);
  }
  return counts;
}

function definedCount(bytes: Uint8Array, section: Section | undefined): number {
  return section ? readU32(bytes, section.contentStart)[0] : 0;
}

/** Indexes (in the global index space) of the mutable globals the module defines. */
function mutableGlobals(bytes: Uint8Array, section: Section | undefined, imported: number): number[] {
  const found: number[] = [];
  if (!section) return found;
  let [count, pos] = readU32(bytes, section.contentStart);
  for (let i = 0; i < count; i++) {
    pos = skipValType(bytes, pos);
    const mutable = bytes[pos++] === 0x01;
    pos = skipConstExpr(bytes, pos);
    if (mutable) found.push(imported + i);
  }
  return found;
}

/** The names a core module exports, read from its binary. */
export function coreExportNames(bytes: Uint8Array): string[] {
  const section = readSections(bytes).find((s) => s.id === SECTION_EXPORT);
  if (!section) return [];
  const names: string[] = [];
  let [count, pos] = readU32(bytes, section.contentStart);
  for (; count > 0; count--) {
    const [len, start] = readU32(bytes, pos);
    names.push(Buffer.from(bytes.subarray(start, start + len)).toString('utf8'));
    pos = skipLeb(bytes, start + len + 1);
  }
  return names;
}

/** The names under which {@link exposeCoreState} exports an entity. */
export function stateExportName(kind: 'global' | 'table' | 'memory', index: number): string {
  return `${STATE_EXPORT_PREFIX}${kind}:${index}`;
}

/**
 * Adds an export for every mutable global, table and memory a core module defines itself, under
 * names starting with {@link STATE_EXPORT_PREFIX}. jco's bindings hide these (a C or Rust module
 * exports neither its stack pointer nor its function table), and restoring an instance to its
 * first state needs to read and write them. The code is untouched: the export section grows, and
 * a custom section records whether the code can write a table ({@link CoreStateFacts}).
 */
export function exposeCoreState(bytes: Uint8Array, options: { fresh?: boolean } = {}): Uint8Array {
  let sections = readSections(bytes);
  const isFacts = (s: Section): boolean => s.id === 0 && customSectionName(bytes, s) === STATE_FACTS_SECTION;
  if (options.fresh) {
    // A module as its author made it: a facts section it carries is not ours to trust.
    if (sections.some(isFacts)) {
      bytes = concat([bytes.subarray(0, sections[0]!.start), ...sections.filter((s) => !isFacts(s)).map((s) => bytes.subarray(s.start, s.end))]);
      sections = readSections(bytes);
    }
  } else if (sections.some(isFacts)) {
    // Exposed already, when its component was prepared (a cached one is kept so): nothing to add.
    return bytes;
  }
  const find = (id: number): Section | undefined => sections.find((s) => s.id === id);
  const imported = countImports(bytes, find(SECTION_IMPORT));
  const entries: number[] = [];
  let added = 0;
  const add = (kind: number, name: string, index: number): void => {
    const encoded = Buffer.from(name, 'utf8');
    entries.push(...writeU32(encoded.length), ...encoded, kind, ...writeU32(index));
    added++;
  };
  for (const index of mutableGlobals(bytes, find(SECTION_GLOBAL), imported.globals)) add(EXPORT_GLOBAL, stateExportName('global', index), index);
  for (let i = 0; i < definedCount(bytes, find(SECTION_TABLE)); i++) add(EXPORT_TABLE, stateExportName('table', imported.tables + i), imported.tables + i);
  for (let i = 0; i < definedCount(bytes, find(SECTION_MEMORY)); i++) add(EXPORT_MEMORY, stateExportName('memory', imported.memories + i), imported.memories + i);
  const scan = scanCode(bytes);
  const facts: CoreStateFacts = scan.writesTables ? { writesTables: true, reason: scan.reason } : { writesTables: false };
  const factsSection = encodeCustomSection(STATE_FACTS_SECTION, JSON.stringify(facts));
  if (added === 0) return concat([bytes, factsSection]);

  const existing = find(SECTION_EXPORT);
  let content: number[];
  if (existing) {
    const [count, first] = readU32(bytes, existing.contentStart);
    content = [...writeU32(count + added), ...bytes.subarray(first, existing.end), ...entries];
  } else {
    content = [...writeU32(added), ...entries];
  }
  const section = Uint8Array.from([SECTION_EXPORT, ...writeU32(content.length), ...content]);
  // The new section replaces the old one in place, or goes before the first section that follows exports.
  const at = existing ?? sections.find((s) => (SECTION_ORDER[s.id] ?? 0) > (SECTION_ORDER[SECTION_EXPORT] as number));
  const cut = at ? at.start : bytes.length;
  const resume = existing ? existing.end : cut;
  return concat([bytes.subarray(0, cut), section, bytes.subarray(resume), factsSection]);
}

function customSectionName(bytes: Uint8Array, section: Section): string {
  const [length, at] = readU32(bytes, section.contentStart);
  return Buffer.from(bytes.buffer, bytes.byteOffset + at, Math.min(length, section.end - at)).toString('utf8');
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
