// Reads one function's log files back, newest first, skipping (and counting) lines a crash left damaged.
import { readdir, readFile } from 'node:fs/promises';
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

/**
 * Reads function `fn`'s lines from its log directory. Files are read newest first and reading
 * stops once `tail` lines are found or a file reaches back before `since`. The unended last line
 * of current.log is left out uncounted: it is being written now, or was torn by a crash and gets
 * its newline (and is counted) when the file is next opened for writing.
 */
export async function readLogDir(dir: string, fn: string, options: LogReadOptions = {}): Promise<LogReadResult> {
  const { since, tail } = options;
  if (tail === 0) return { lines: [], damaged: 0 };
  const newestFirst: LogLine[][] = [];
  let found = 0;
  let damaged = 0;
  for (const name of await logFiles(dir)) {
    let text: string;
    try {
      text = await readFile(path.join(dir, name), 'utf8');
    } catch (err) {
      // Rotated away between the listing and the read.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const parts = text.split('\n');
    const unended = parts.pop()!;
    if (unended !== '' && name !== CURRENT_LOG) parts.push(unended);
    const lines: LogLine[] = [];
    let reachedBefore = false;
    for (const part of parts) {
      if (part === '') continue;
      const line = parseLine(part, fn);
      if (!line) damaged++;
      else if (since !== undefined && line.time < since) reachedBefore = true;
      else lines.push(line);
    }
    newestFirst.push(lines);
    found += lines.length;
    if (reachedBefore || (tail !== undefined && found >= tail)) break;
  }
  const lines = newestFirst.reverse().flat();
  return { lines: tail === undefined ? lines : lines.slice(-tail), damaged };
}
