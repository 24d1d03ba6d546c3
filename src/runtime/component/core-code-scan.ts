// Walks a core module's code to learn whether any instruction can change a table after instantiation.
import { readSections, readU32 as readU32At, skipLeb as skipLebAt } from '../wasm/index.js';

/** What a walk over every function body found. */
export interface CodeScan {
  /**
   * True when some instruction may change a table (table.set, table.grow, table.fill, table.copy,
   * table.init), or when the walk met an instruction it does not know (then nothing is assumed).
   */
  writesTables: boolean;
  /** Why writesTables is true, for the log. */
  reason: string | undefined;
}

const SECTION_CODE = 10;

class Unknown extends Error {}

const unknown = (what: string): Unknown => new Unknown(what);
const skipLeb = (bytes: Uint8Array, offset: number): number => skipLebAt(bytes, offset, unknown);
const readU32 = (bytes: Uint8Array, offset: number): [value: number, next: number] => readU32At(bytes, offset, unknown);

/** A value type, a heap type or a block type: one byte for the short forms, else a LEB128 index. */
function skipType(bytes: Uint8Array, pos: number): number {
  const byte = bytes[pos] as number;
  if (byte === 0x63 || byte === 0x64) return skipLeb(bytes, pos + 1);
  if (byte >= 0x40 && byte < 0x80) return pos + 1;
  return skipLeb(bytes, pos);
}

function skipMemarg(bytes: Uint8Array, pos: number): number {
  const [align, next] = readU32(bytes, pos);
  // Bit 6 of the alignment says a memory index follows (multi-memory).
  const afterIndex = align & 0x40 ? skipLeb(bytes, next) : next;
  return skipLeb(bytes, afterIndex);
}

/** Skips the immediates of a 0xFC-prefixed instruction; returns -1 for one that writes a table. */
function skipMisc(bytes: Uint8Array, pos: number): number {
  const [op, next] = readU32(bytes, pos);
  if (op <= 7) return next;
  if (op === 12 || op === 14 || op === 15 || op === 17) return -1;
  if (op === 8 || op === 10) return skipLeb(bytes, skipLeb(bytes, next));
  if (op === 9 || op === 11 || op === 13 || op === 16) return skipLeb(bytes, next);
  throw new Unknown(`0xfc ${op}`);
}

function skipSimd(bytes: Uint8Array, pos: number): number {
  const [op, next] = readU32(bytes, pos);
  if (op <= 11 || op === 92 || op === 93) return skipMemarg(bytes, next);
  if (op === 12 || op === 13) return next + 16;
  if (op >= 21 && op <= 34) return next + 1;
  if (op >= 84 && op <= 91) return skipMemarg(bytes, next) + 1;
  return next;
}

function skipAtomic(bytes: Uint8Array, pos: number): number {
  const [op, next] = readU32(bytes, pos);
  if (op === 0x03) return next + 1;
  if (op > 0x4e) throw new Unknown(`0xfe ${op}`);
  return skipMemarg(bytes, next);
}

/** Skips one instruction at `pos`; returns -1 when it writes a table. */
function skipInstruction(bytes: Uint8Array, pos: number): number {
  const op = bytes[pos++] as number;
  if (op >= 0x45 && op <= 0xc4) return pos;
  if (op >= 0x28 && op <= 0x3e) return skipMemarg(bytes, pos);
  if (op >= 0x20 && op <= 0x25) return skipLeb(bytes, pos);
  switch (op) {
    case 0x00: case 0x01: case 0x05: case 0x0a: case 0x0b: case 0x0f: case 0x19: case 0x1a: case 0x1b:
    case 0xd1: case 0xd3: case 0xd4:
      return pos;
    case 0x02: case 0x03: case 0x04: case 0x06:
      return skipType(bytes, pos);
    case 0x07: case 0x08: case 0x09: case 0x0c: case 0x0d: case 0x10: case 0x12: case 0x14: case 0x15: case 0x18:
    case 0x3f: case 0x40: case 0xd2: case 0xd5: case 0xd6:
      return skipLeb(bytes, pos);
    case 0x11: case 0x13:
      return skipLeb(bytes, skipLeb(bytes, pos));
    case 0x0e: {
      let [count, next] = readU32(bytes, pos);
      for (; count >= 0; count--) next = skipLeb(bytes, next);
      return next;
    }
    case 0x1c: {
      let [count, next] = readU32(bytes, pos);
      for (; count > 0; count--) next = skipType(bytes, next);
      return next;
    }
    case 0x1f: {
      let next = skipType(bytes, pos);
      let count: number;
      [count, next] = readU32(bytes, next);
      for (; count > 0; count--) {
        const kind = bytes[next++] as number;
        if (kind <= 1) next = skipLeb(bytes, next);
        next = skipLeb(bytes, next);
      }
      return next;
    }
    case 0x26:
      return -1;
    case 0x41: case 0x42:
      return skipLeb(bytes, pos);
    case 0x43:
      return pos + 4;
    case 0x44:
      return pos + 8;
    case 0xd0:
      return skipType(bytes, pos);
    case 0xfc:
      return skipMisc(bytes, pos);
    case 0xfd:
      return skipSimd(bytes, pos);
    case 0xfe:
      return skipAtomic(bytes, pos);
    default:
      throw new Unknown(`opcode 0x${op.toString(16)}`);
  }
}

function codeSection(bytes: Uint8Array): [start: number, end: number] | undefined {
  const code = readSections(bytes, unknown).find((s) => s.id === SECTION_CODE);
  return code && [code.contentStart, code.end];
}

/**
 * Decodes every function body of a core module (MVP plus the bulk-memory, reference-types, SIMD,
 * threads, tail-call and exception proposals) and reports whether any instruction may write a
 * table. A module that cannot write its tables keeps them as instantiation left them, so a restore
 * need only check their size; anything unrecognised counts as a write.
 */
export function scanCode(bytes: Uint8Array): CodeScan {
  try {
    const section = codeSection(bytes);
    if (!section) return { writesTables: false, reason: undefined };
    let [count, pos] = readU32(bytes, section[0]);
    for (let fn = 0; fn < count; fn++) {
      const [size, bodyStart] = readU32(bytes, pos);
      const end = bodyStart + size;
      let [groups, at] = readU32(bytes, bodyStart);
      for (; groups > 0; groups--) at = skipType(bytes, skipLeb(bytes, at));
      while (at < end) {
        at = skipInstruction(bytes, at);
        if (at < 0) return { writesTables: true, reason: `function ${fn} writes a table` };
      }
      if (at !== end) throw new Unknown(`function ${fn} ends mid-instruction`);
      pos = end;
    }
    return { writesTables: false, reason: undefined };
  } catch (err) {
    if (err instanceof Unknown) return { writesTables: true, reason: `its code could not be read (${err.message})` };
    throw err;
  }
}
