// Custom sections at the top level of a module or component: written whole, read back, refused when malformed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeCustomSection, readCustomSection } from '../src/runtime/wasm/index.js';

const malformed = (what: string): Error => new Error(`malformed: ${what}`);
/** An empty component: the magic number and the component layer's version. */
const COMPONENT_HEADER = Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);

const concat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);

describe('custom sections', () => {
  test('custom sections — one appended is read back by name; another name, or none, reads as absent', () => {
    const bytes = concat(COMPONENT_HEADER, encodeCustomSection('other', 'x'), encodeCustomSection('lamplighter:entry', 'incoming-handler/1'));
    assert.equal(readCustomSection(bytes, 'lamplighter:entry', malformed), 'incoming-handler/1');
    assert.equal(readCustomSection(bytes, 'other', malformed), 'x');
    assert.equal(readCustomSection(bytes, 'missing', malformed), undefined);
    assert.equal(readCustomSection(COMPONENT_HEADER, 'lamplighter:entry', malformed), undefined);
  });

  test('custom sections — bytes are kept as they are, and a long text gets a multi-byte size', () => {
    const bytes = Uint8Array.from([0xff, 0, 1]);
    assert.deepEqual([...encodeCustomSection('raw', bytes)], [0, 7, 3, 0x72, 0x61, 0x77, 0xff, 0, 1]);
    const text = 'a'.repeat(300);
    const section = encodeCustomSection('n', text);
    assert.deepEqual([...section.subarray(0, 3)], [0, 0xae, 0x02]);
    assert.equal(readCustomSection(concat(COMPONENT_HEADER, section), 'n', malformed), text);
  });

  test('custom sections — an empty one, or a name that is not UTF-8, is refused', () => {
    assert.throws(() => readCustomSection(concat(COMPONENT_HEADER, Uint8Array.from([0, 0])), 'a', malformed), /a custom section has no name/);
    assert.throws(() => readCustomSection(concat(COMPONENT_HEADER, Uint8Array.from([0, 2, 1, 0xff])), 'a', malformed), /not UTF-8/);
  });

  test('custom sections — a name longer than its section, or a section past the end, is refused', () => {
    assert.throws(() => readCustomSection(concat(COMPONENT_HEADER, Uint8Array.from([0, 2, 9, 0x61])), 'a', malformed), /a custom section name runs past its section/);
    assert.throws(() => readCustomSection(concat(COMPONENT_HEADER, Uint8Array.from([0, 9, 1, 0x61])), 'a', malformed), /section 0 runs past the end/);
  });
});
