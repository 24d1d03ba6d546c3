// Reads one function's log files back, newest first, skipping (and counting) lines a crash left damaged.
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { LogLine } from './function-logs.js';
import { CURRENT_LOG } from './log-file-writer.js';

/** Which lines to read. */
export interface LogReadOptions {
  /** Only lines at or after this time (ms since the epoch). @default all */
  since?: number;
  /** Only the last this many lines. @default all */
  tail?: number;
}

/** Lines read, oldest first, and how many damaged lines were skipped. */
export interface LogReadResult {
  lines: LogLine[];
  damaged: number;
}

const STREAMS = new Set<string>(['stdout', 'stderr', 'platform']);
const LOG_FILE = /^current\.log(?:\.(\d+))?$/;

/** A stored line as {@link LogLine}, or undefined when it is not one (torn, garbled). */
function parseLine(text: string, fn: string): LogLine | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { time, stream, text: body } = value as Record<string, unknown>;
  if (typeof time !== 'number' || !Number.isFinite(time) || typeof stream !== 'string' || !STREAMS.has(stream) || typeof body !== 'string') return undefined;
  return { time, function: fn, stream: stream as LogLine['stream'], text: body };
}

/** The log files in `dir`, newest first (current.log, then .1, .2…). */
async function logFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((name) => ({ name, match: LOG_FILE.exec(name) }))
    .filter((f) => f.match)
    .map((f) => ({ name: f.name, index: f.match![1] === undefined ? 0 : Number(f.match![1]) }))
    .sort((a, b) => a.index - b.index)
    .map((f) => f.name);
}

/** True when `dir` holds log files. */
export async function hasLogFiles(dir: string): Promise<boolean> {
  return (await logFiles(dir)).length > 0;
}

/** Bytes read at a time, from the end of a file back. */
const CHUNK_BYTES = 64 * 1024;

/**
 * Calls `visit` with each line of `file`, newest first, reading from the end back in chunks,
 * until `visit` returns false. With `skipUnended`, an unended last line is not visited.
 */
async function eachLineBackward(file: string, skipUnended: boolean, visit: (text: string) => boolean): Promise<void> {
  const fh = await open(file, 'r');
  try {
    let position = (await fh.stat()).size;
    // The start of the earliest line seen so far, which the next chunk back completes.
    let pending = Buffer.alloc(0);
    let atEnd = true;
    let skipping = false;
    while (position > 0) {
      const length = Math.min(CHUNK_BYTES, position);
      position -= length;
      const chunk = Buffer.alloc(length);
      await fh.read(chunk, 0, length, position);
      let data = pending.length > 0 ? Buffer.concat([chunk, pending]) : chunk;
      if (atEnd) {
        atEnd = false;
        if (data[data.length - 1] === 0x0a) data = data.subarray(0, data.length - 1);
        else skipping = skipUnended;
      }
      // A newline byte never occurs inside a UTF-8 character, so splitting the bytes is safe.
      let end = data.length;
      let newline = end > 0 ? data.lastIndexOf(0x0a, end - 1) : -1;
      while (newline >= 0) {
        const line = data.subarray(newline + 1, end);
        if (skipping) skipping = false;
        else if (line.length > 0 && !visit(line.toString('utf8'))) return;
        end = newline;
        newline = end > 0 ? data.lastIndexOf(0x0a, end - 1) : -1;
      }
      pending = data.subarray(0, end);
    }
    if (!skipping && pending.length > 0) visit(pending.toString('utf8'));
  } finally {
    await fh.close();
  }
}

/**
 * Reads function `fn`'s lines from its log directory. Files are read newest first, each from its
 * end back, and reading stops once `tail` lines are found or a line from before `since` is
 * reached, so `tail` costs what it returns, not the size of the files. The unended last line of
 * current.log is left out uncounted: it is being written now, or was torn by a crash and gets its
 * newline (and is counted) when the file is next opened for writing.
 */
export async function readLogDir(dir: string, fn: string, options: LogReadOptions = {}): Promise<LogReadResult> {
  const { since, tail } = options;
  if (tail === 0) return { lines: [], damaged: 0 };
  const newestFirst: LogLine[] = [];
  let damaged = 0;
  let done = false;
  for (const name of await logFiles(dir)) {
    try {
      await eachLineBackward(path.join(dir, name), name === CURRENT_LOG, (text) => {
        const line = parseLine(text, fn);
        if (!line) {
          damaged++;
          return true;
        }
        if (since !== undefined && line.time < since) done = true;
        else newestFirst.push(line);
        if (tail !== undefined && newestFirst.length >= tail) done = true;
        return !done;
      });
    } catch (err) {
      // Rotated away between the listing and the read.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (done) break;
  }
  return { lines: newestFirst.reverse(), damaged };
}
