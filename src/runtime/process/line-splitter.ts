// Splits a child's output stream into lines for the log sink and keeps the last few for error messages.
import type { Readable } from 'node:stream';

/** Longest line passed on whole; longer runs without a newline are cut at this many characters. */
export const MAX_LINE_LENGTH = 16 * 1024;

/** Options for {@link forwardLines}. */
export interface ForwardLinesOptions {
  /** Lines kept for {@link LineTail.lines}. @default 20 */
  keep?: number;
}

/** The most recent lines of one stream. */
export interface LineTail {
  /** The last lines seen, oldest first. */
  lines(): string[];
}

/** Reads `stream` as UTF-8, calls `onLine` per line (without its newline) and remembers the tail. */
export function forwardLines(stream: Readable, onLine: (line: string) => void, options: ForwardLinesOptions = {}): LineTail {
  const keep = options.keep ?? 20;
  const tail: string[] = [];
  let pending = '';
  const emit = (raw: string): void => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    tail.push(line.length > 500 ? `${line.slice(0, 500)}…` : line);
    if (tail.length > keep) tail.shift();
    try {
      onLine(line);
    } catch {
      // A failing log sink must not take the instance down.
    }
  };
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      emit(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
    while (pending.length > MAX_LINE_LENGTH) {
      emit(pending.slice(0, MAX_LINE_LENGTH));
      pending = pending.slice(MAX_LINE_LENGTH);
    }
  });
  const flush = (): void => {
    if (pending !== '') emit(pending);
    pending = '';
  };
  stream.on('end', flush);
  stream.on('close', flush);
  stream.on('error', () => {});
  return { lines: () => [...tail] };
}
