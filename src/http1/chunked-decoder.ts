// The chunked transfer coding (RFC 9112 §7.1), decoded for both directions: request bodies at the
// gateway's server and response bodies from the children behind it. Size lines, data, and
// trailers (read and dropped: no hop after ours is promised them).
import { readHeaderLine, type HeaderLine } from './header-line.js';

/** Options for a {@link ChunkedDecoder}. */
export interface ChunkedDecoderOptions {
  /** Names the body in error messages, e.g. "the chunked request body". */
  subject: string;
  /**
   * CRLF only, and trailer lines and chunk extensions checked: for what clients send, where a
   * lenient reading could be read a second way by the next hop. When false a bare LF ends a line
   * too, as for a child's answers, which end at our proxy.
   */
  strict: boolean;
  /** Most bytes of trailers accepted. */
  maxTrailerBytes: number;
  /** Makes the error thrown for a body that cannot be read: 431 for oversized trailers, else 400. */
  fail: (status: 400 | 431, message: string) => Error;
}

/** Bytes one chunk-size line (with its extensions) may take. */
const MAX_CHUNK_LINE = 4096;
/** Hex digits a chunk size may have: 12 is 256 TiB, well inside a double's exact integers. */
const MAX_SIZE_DIGITS = 12;

/**
 * Chunk extensions as RFC 9112 §7.1.1 gives them, `;name` or `;name=value` with the value a token
 * or a quoted string, but without the optional whitespace (BWS) around `;` and `=`, which llhttp
 * refuses: a line one hop reads and the next refuses or reads otherwise can hide a chunk.
 */
const CHUNK_EXTENSIONS = /^(?:;[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:=(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"))?)*$/;

/** Fields that frame a message, and so may not come as trailers. */
const FRAMING_TRAILERS: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding']);

const enum Part {
  Size,
  Data,
  DataEnd,
  Trailers,
  Done,
}

/** The value of each byte as a hex digit, or -1. */
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(i)] = i;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(i)] = i;
}

/** Decodes one chunked body at a time; {@link reset} before each. */
export class ChunkedDecoder {
  readonly #options: ChunkedDecoderOptions;
  #part: Part = Part.Done;
  #remaining = 0;
  #line = '';
  #trailerBytes = 0;
  /** Where a trailer line is read into, to check it as a header line (and then dropped). */
  readonly #trailer: HeaderLine = { name: '', value: '' };

  constructor(options: ChunkedDecoderOptions) {
    this.#options = options;
  }

  /** Readies the decoder for a new body. */
  reset(): void {
    this.#part = Part.Size;
    this.#remaining = 0;
    this.#line = '';
    this.#trailerBytes = 0;
  }

  /** True once the last chunk and the trailers have been read. */
  get done(): boolean {
    return this.#part === Part.Done;
  }

  /**
   * Decodes `chunk` from `at`, passing each piece of data to `onData`; returns the index after
   * the bytes used, which is the end of the body once {@link done}. Throws what `fail` makes.
   */
  execute(chunk: Buffer, at: number, onData: (data: Buffer) => void): number {
    while (at < chunk.length && this.#part !== Part.Done) {
      switch (this.#part) {
        case Part.Size:
          at = this.#readSize(chunk, at);
          break;
        case Part.Data: {
          const take = Math.min(this.#remaining, chunk.length - at);
          this.#remaining -= take;
          onData(chunk.subarray(at, at + take));
          at += take;
          if (this.#remaining === 0) this.#part = Part.DataEnd;
          break;
        }
        case Part.DataEnd:
          at = this.#readDataEnd(chunk[at]!, at);
          break;
        case Part.Trailers:
          // Almost always no trailers: the empty line that ends the body.
          if (this.#line === '' && chunk[at] === 13 && chunk[at + 1] === 10) {
            this.#part = Part.Done;
            at += 2;
          } else {
            at = this.#readLine(chunk, at);
          }
          break;
      }
    }
    return at;
  }

  // The CRLF after a chunk's data (a bare LF too when not strict); anything else means the chunk
  // ran longer than its size line said.
  #readDataEnd(c: number, at: number): number {
    if (c === 13 && this.#line === '') {
      this.#line = '\r';
      return at + 1;
    }
    if (c === 10 && (this.#line === '\r' || !this.#options.strict)) {
      this.#line = '';
      this.#part = Part.Size;
      return at + 1;
    }
    throw this.#options.fail(400, `a chunk of ${this.#options.subject} is longer than its size line says`);
  }

  // A size line wholly inside this chunk, with no extension, is read in place; anything else
  // (split across reads, extensions, odd spacing) goes through the general line reader.
  #readSize(chunk: Buffer, at: number): number {
    if (this.#line === '') {
      let size = 0;
      let k = at;
      const limit = Math.min(chunk.length, at + MAX_SIZE_DIGITS);
      for (; k < limit; k++) {
        const d = HEX_VALUE[chunk[k]!]!;
        if (d < 0) break;
        size = size * 16 + d;
      }
      if (k > at && k < chunk.length) {
        const c = chunk[k];
        const after = c === 13 && chunk[k + 1] === 10 ? k + 2 : c === 10 && !this.#options.strict ? k + 1 : -1;
        if (after > 0) {
          this.#remaining = size;
          this.#part = size === 0 ? Part.Trailers : Part.Data;
          return after;
        }
      }
    }
    return this.#readLine(chunk, at);
  }

  // Reads one line of the framing (a size line or a trailer line), which may span reads.
  #readLine(chunk: Buffer, at: number): number {
    const { subject, strict, maxTrailerBytes, fail } = this.#options;
    const lf = chunk.indexOf(10, at);
    const upto = lf < 0 ? chunk.length : lf;
    this.#line += chunk.toString('latin1', at, upto);
    if (this.#part === Part.Trailers) {
      this.#trailerBytes += upto - at;
      if (this.#trailerBytes > maxTrailerBytes) throw fail(431, `the trailers of ${subject} are larger than ${maxTrailerBytes / 1024} KiB`);
    } else if (this.#line.length > MAX_CHUNK_LINE) {
      throw fail(400, `a chunk size line of ${subject} is too long`);
    }
    if (lf < 0) return chunk.length;
    const raw = this.#line;
    this.#line = '';
    const cr = raw.charCodeAt(raw.length - 1) === 13;
    if (!cr && strict) throw fail(400, `a line of ${subject} ends in a bare LF (CRLF is required)`);
    const line = cr ? raw.slice(0, -1) : raw;
    if (this.#part === Part.Trailers) {
      if (line === '') this.#part = Part.Done;
      else if (strict && readHeaderLine(line, 0, line.length, this.#trailer) !== undefined) {
        throw fail(400, `a trailer line of ${subject} is not a header field: ${JSON.stringify(line.slice(0, 40))}`);
      } else if (strict && FRAMING_TRAILERS.has(this.#trailer.name)) {
        // Framing is the head's alone (RFC 9110 §6.5.1); a next hop that merged it would read the body again.
        throw fail(400, `the trailers of ${subject} carry ${this.#trailer.name}, which only the head may`);
      }
      return lf + 1;
    }
    const semi = line.indexOf(';');
    let sizeEnd = semi < 0 ? line.length : semi;
    // Only spaces and tabs may stand between the size and an extension (RFC 9112 §7.1.1), and
    // only when not strict: llhttp refuses them, so a client's are refused, lest the next hop
    // read the line another way.
    if (!strict) while (sizeEnd > 0 && (line.charCodeAt(sizeEnd - 1) === 32 || line.charCodeAt(sizeEnd - 1) === 9)) sizeEnd--;
    let size = 0;
    let valid = sizeEnd > 0 && sizeEnd <= MAX_SIZE_DIGITS;
    for (let k = 0; valid && k < sizeEnd; k++) {
      const c = line.charCodeAt(k);
      const d = c > 0xff ? -1 : HEX_VALUE[c]!;
      if (d < 0) valid = false;
      else size = size * 16 + d;
    }
    if (!valid) throw fail(400, `a chunk size of ${subject} is not a hex number of at most ${MAX_SIZE_DIGITS} digits: ${JSON.stringify(line.slice(0, 40))}`);
    if (strict && semi >= 0) {
      const extensions = line.slice(semi);
      if (!CHUNK_EXTENSIONS.test(extensions)) {
        // The pattern refuses control characters too; the second test only names them in the message.
        if (/[\0-\x08\x0a-\x1f\x7f\r]/.test(extensions)) throw fail(400, `a chunk extension of ${subject} has a control character`);
        throw fail(400, `a chunk extension of ${subject} is not ;name or ;name=value with a token or quoted value: ${JSON.stringify(extensions.slice(0, 40))}`);
      }
    }
    this.#remaining = size;
    this.#part = size === 0 ? Part.Trailers : Part.Data;
    return lf + 1;
  }
}
