// Per-function log capture: a ring of recent lines, files that outlast the node, live followers and forwarding sinks.
import path from 'node:path';
import { hasLogFiles, readLogDir, type LogReadOptions, type LogReadResult } from './log-file-reader.js';
import { LogFileWriter, type LogDropReason } from './log-file-writer.js';
import { LogForwarder, type LogForwarderOptions, type LogSink } from './log-forwarder.js';
import { nodeLogFs, type LogFs } from './log-fs.js';

/** One captured line of a function's output. */
export interface LogLine {
  /** Milliseconds since the epoch. */
  time: number;
  function: string;
  stream: 'stdout' | 'stderr' | 'platform';
  text: string;
}

/** Defaults of {@link FunctionLogsOptions}. */
export const FunctionLogDefaults = {
  keep: 1000,
  maxBytes: 10 * 1024 * 1024,
  maxFiles: 5,
  bufferBytes: 1024 * 1024,
} as const;

/** Where {@link FunctionLogs} reports what it drops, skips and fails at. */
export interface FunctionLogEvents {
  /** Lines of `fn` not kept by `sink` (`file`, or a forwarding sink's name). */
  dropped?(fn: string, sink: string, count: number): void;
  /** Damaged lines of `fn` skipped while reading its files. */
  damaged?(fn: string, count: number): void;
  /** Something to tell the operator once, for the node log. */
  notice?(level: 'warn' | 'info', fields: Record<string, unknown>, message: string): void;
}

/** Options for {@link FunctionLogs}. */
export interface FunctionLogsOptions {
  /** Lines kept in memory per function. @default FunctionLogDefaults.keep */
  keep?: number;
  /** Directory of the log files (`<dir>/<function>/current.log`); without it nothing is written. @default undefined */
  dir?: string;
  /** A log file is rotated before it would pass this many bytes. @default FunctionLogDefaults.maxBytes (10 MiB) */
  maxBytes?: number;
  /** Files kept per function, the current one included. @default FunctionLogDefaults.maxFiles (5) */
  maxFiles?: number;
  /** Bytes held per function while the disk catches up; past it lines are dropped and counted. @default FunctionLogDefaults.bufferBytes (1 MiB) */
  bufferBytes?: number;
  /** The file system written through; tests inject faults here. @default node:fs */
  fs?: LogFs;
  events?: FunctionLogEvents;
}

/** Keeps the output of every function, on disk and in memory, and lets the CLI follow it. */
export class FunctionLogs {
  readonly #rings = new Map<string, LogLine[]>();
  readonly #followers = new Set<(line: LogLine) => void>();
  readonly #keep: number;
  #closed = false;
  readonly #options: FunctionLogsOptions;
  readonly #writers = new Map<string, LogFileWriter>();
  /** Files of forgotten functions still being written, for close() to wait on. */
  readonly #closing = new Set<Promise<void>>();
  readonly #forwarders = new Set<LogForwarder>();
  readonly #events: FunctionLogEvents;

  constructor(options: FunctionLogsOptions = {}) {
    this.#keep = options.keep ?? FunctionLogDefaults.keep;
    this.#options = options;
    this.#events = options.events ?? {};
    const maxFiles = options.maxFiles ?? FunctionLogDefaults.maxFiles;
    if (!Number.isInteger(maxFiles) || maxFiles < 1) throw new RangeError(`maxFiles must be a whole number of at least 1, got ${maxFiles}`);
  }

  /** Records text written by a function; splits it into lines. Never waits for the disk or a sink. */
  write(fn: string, stream: LogLine['stream'], text: string): void {
    let ring = this.#rings.get(fn);
    if (!ring) {
      ring = [];
      this.#rings.set(fn, ring);
    }
    const writer = this.#writerOf(fn);
    const time = Date.now();
    for (const part of text.split('\n')) {
      if (part === '') continue;
      const line: LogLine = { time, function: fn, stream, text: part.endsWith('\r') ? part.slice(0, -1) : part };
      ring.push(line);
      writer?.append(`${JSON.stringify(line)}\n`);
      for (const forwarder of this.#forwarders) forwarder.offer(line);
      for (const follower of this.#followers) follower(line);
    }
    // Trimmed a quarter at a time: trimming one line at a time moves the whole ring on every write.
    if (ring.length > this.#keep + (this.#keep >> 2)) ring.splice(0, ring.length - this.#keep);
  }

  /** Recent lines of the given functions from memory, oldest first. */
  recent(functions: readonly string[], limit = this.#keep): LogLine[] {
    const lines = functions.flatMap((fn) => this.#rings.get(fn)?.slice(-this.#keep) ?? []);
    lines.sort((a, b) => a.time - b.time);
    return limit <= 0 ? [] : lines.slice(-limit);
  }

  /**
   * Lines of the given functions from their files (so from before a restart too), oldest first,
   * after the lines written so far reach the disk. Without a directory, from memory.
   */
  async read(functions: readonly string[], options: LogReadOptions = {}): Promise<LogReadResult> {
    const dir = this.#options.dir;
    if (dir === undefined) {
      const lines = this.recent(functions).filter((l) => options.since === undefined || l.time >= options.since);
      return { lines: options.tail === undefined ? lines : options.tail <= 0 ? [] : lines.slice(-options.tail), damaged: 0 };
    }
    await Promise.all(functions.map((fn) => this.#writers.get(fn)?.flush()));
    const results = await Promise.all(functions.map((fn) => readLogDir(path.join(dir, fn), fn, options)));
    let damaged = 0;
    results.forEach((r, i) => {
      if (r.damaged > 0) this.#events.damaged?.(functions[i]!, r.damaged);
      damaged += r.damaged;
    });
    // Each function's lines are in order; a stable sort by time merges them.
    const lines = results.flatMap((r) => r.lines).sort((a, b) => a.time - b.time);
    return { lines: options.tail === undefined ? lines : lines.slice(-options.tail), damaged };
  }

  /** True when `fn` has log files (it may since have been removed). */
  async hasFiles(fn: string): Promise<boolean> {
    const dir = this.#options.dir;
    if (dir === undefined || !/^[a-z][a-z0-9-]{0,62}$/.test(fn)) return false;
    return hasLogFiles(path.join(dir, fn));
  }

  /** Calls `listener` for every new line; returns the unsubscribe function. */
  follow(listener: (line: LogLine) => void): () => void {
    this.#followers.add(listener);
    return () => this.#followers.delete(listener);
  }

  /**
   * Sends every new line on to `sink` through a bounded queue (see {@link LogForwarderOptions});
   * returns a function that stops, sending what is queued first.
   */
  forward(sink: LogSink, options: Omit<LogForwarderOptions, 'onDropped' | 'onFailure'> = {}): () => Promise<void> {
    let noted = false;
    const forwarder = new LogForwarder(sink, {
      ...options,
      onDropped: (fn, count) => {
        this.#events.dropped?.(fn, sink.name, count);
        if (!noted) {
          noted = true;
          this.#events.notice?.('warn', { sink: sink.name, function: fn }, `function log lines are being dropped on the way to ${sink.name}: its queue is full or it failed (see lamplighter_log_lines_dropped_total)`);
        }
      },
      onFailure: (err) => {
        if (err) this.#events.notice?.('warn', { sink: sink.name, err: err.message }, `forwarding function logs to ${sink.name} failed: ${err.message}`);
        else {
          noted = false;
          this.#events.notice?.('info', { sink: sink.name }, `forwarding function logs to ${sink.name} works again`);
        }
      },
    });
    this.#forwarders.add(forwarder);
    return async () => {
      this.#forwarders.delete(forwarder);
      await forwarder.close();
    };
  }

  /**
   * Forgets a removed function's lines in memory and closes its file. Its files stay, readable
   * with `lamplighter logs`, and a function deployed again under the name appends to them.
   */
  forget(fn: string): void {
    this.#rings.delete(fn);
    const writer = this.#writers.get(fn);
    this.#writers.delete(fn);
    if (!writer) return;
    const closing = writer.close().finally(() => this.#closing.delete(closing));
    this.#closing.add(closing);
  }

  /** Writes what is queued, to the files and the sinks, and closes them; later lines stay in memory only. */
  async close(): Promise<void> {
    this.#closed = true;
    const writers = [...this.#writers.values()];
    this.#writers.clear();
    const forwarders = [...this.#forwarders];
    this.#forwarders.clear();
    await Promise.all([...writers.map((w) => w.close()), ...forwarders.map((f) => f.close()), ...this.#closing]);
  }

  #writerOf(fn: string): LogFileWriter | undefined {
    const dir = this.#options.dir;
    if (dir === undefined || this.#closed) return undefined;
    let writer = this.#writers.get(fn);
    if (writer) return writer;
    const file = path.join(dir, fn);
    writer = new LogFileWriter(file, {
      maxBytes: this.#options.maxBytes ?? FunctionLogDefaults.maxBytes,
      maxFiles: this.#options.maxFiles ?? FunctionLogDefaults.maxFiles,
      bufferBytes: this.#options.bufferBytes ?? FunctionLogDefaults.bufferBytes,
      fs: this.#options.fs ?? nodeLogFs,
      onDropped: (count: number, reason: LogDropReason, first: boolean) => {
        this.#events.dropped?.(fn, 'file', count);
        if (first) {
          const why = reason === 'full' ? 'the disk is not keeping up and its buffer is full' : 'writing them failed';
          this.#events.notice?.('warn', { function: fn, dir: file, reason }, `dropping log lines of function '${fn}': ${why} (see lamplighter_log_lines_dropped_total)`);
        }
      },
      onFailure: (err) => {
        if (err) this.#events.notice?.('warn', { function: fn, dir: file, err: err.message }, `cannot write the log of function '${fn}' in ${file}: ${err.message}`);
        else this.#events.notice?.('info', { function: fn, dir: file }, `writing the log of function '${fn}' works again`);
      },
    });
    this.#writers.set(fn, writer);
    return writer;
  }
}
