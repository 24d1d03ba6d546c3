// The WebAssembly binary format's smallest parts: LEB128 integers and the section list. Shared by
// the deploy-time checks of WAGI modules and the rewrite of components' core modules.

/** One section of a module. */
export interface Section {
  id: number;
  /** Offset of the section's id byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset one past the last content byte. */
  end: number;
}

/** Makes the error a malformed binary is refused with; `what` says what is wrong. */
export type Malformed = (what: string) => Error;

/** Reads an unsigned LEB128 integer of at most 32 bits at `offset`; returns it and the next offset. */
export function readU32(bytes: Uint8Array, offset: number, malformed: Malformed): [value: number, next: number] {
  let result = 0;
  let shift = 0;
  let pos = offset;
  for (;;) {
    if (pos >= bytes.length || shift > 28) throw malformed('truncated or overlong LEB128 integer');
    const byte = bytes[pos++] as number;
    result |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) break;
    shift += 7;
  }
  return [result >>> 0, pos];
}

/** Skips any LEB128 integer (signed or not, up to 64 bits) at `offset`; returns the next offset. */
export function skipLeb(bytes: Uint8Array, offset: number, malformed: Malformed): number {
  let pos = offset;
  while (pos < bytes.length && ((bytes[pos] as number) & 0x80) !== 0) pos++;
  if (pos >= bytes.length) throw malformed('truncated LEB128 integer');
  return pos + 1;
}

/** An unsigned integer as LEB128 bytes. */
export function writeU32(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** The sections of a module, after its 8-byte header; a section past the end is refused. */
export function readSections(bytes: Uint8Array, malformed: Malformed): Section[] {
  const sections: Section[] = [];
  let pos = 8;
  while (pos < bytes.length) {
    const start = pos;
    const id = bytes[pos++] as number;
    const [size, contentStart] = readU32(bytes, pos, malformed);
    const end = contentStart + size;
    if (end > bytes.length) throw malformed(`section ${id} runs past the end`);
    sections.push({ id, start, contentStart, end });
    pos = end;
  }
  return sections;
}

/** A custom section (id 0) named `name` holding `payload` (text is written as UTF-8), as bytes to append to a module or component. */
export function encodeCustomSection(name: string, payload: Uint8Array | string): Uint8Array {
  const encoder = new TextEncoder();
  const nameBytes = encoder.encode(name);
  const body = typeof payload === 'string' ? encoder.encode(payload) : payload;
  const nameLength = writeU32(nameBytes.length);
  const contentLength = nameLength.length + nameBytes.length + body.length;
  const head = [0, ...writeU32(contentLength), ...nameLength];
  const out = new Uint8Array(head.length + nameBytes.length + body.length);
  out.set(head);
  out.set(nameBytes, head.length);
  out.set(body, head.length + nameBytes.length);
  return out;
}

/** The text of the first custom section named `name` at the top level of a module or component. */
export function readCustomSection(bytes: Uint8Array, name: string, malformed: Malformed): string | undefined {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const decode = (from: number, to: number): string => {
    try {
      return decoder.decode(bytes.subarray(from, to));
    } catch {
      throw malformed('a custom section holds text that is not UTF-8');
    }
  };
  for (const section of readSections(bytes, malformed)) {
    if (section.id !== 0) continue;
    if (section.contentStart === section.end) throw malformed('a custom section has no name');
    const [length, nameStart] = readU32(bytes.subarray(0, section.end), section.contentStart, malformed);
    if (nameStart + length > section.end) throw malformed('a custom section name runs past its section');
    if (decode(nameStart, nameStart + length) === name) return decode(nameStart + length, section.end);
  }
  return undefined;
}
