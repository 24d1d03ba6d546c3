// One function's log files: lines buffered in memory and appended in batches off the request path, rotated by size.
import path from 'node:path';
import type { LogFileHandle, LogFs } from './log-fs.js';

/** The file being written in a function's log directory; rotated files add `.1` (newest) to `.N`. */
export const CURRENT_LOG = 'current.log';

/** Why lines were dropped: the buffer was full (the disk too slow or failing), or their write failed. */
export type LogDropReason = 'full' | 'failed';

/** Settings of a {@link LogFileWriter}. */
export interface LogFileWriterOptions {
  /** A file is rotated before it would pass this many bytes. */
  maxBytes: number;
  /** Files kept, the current one included; the oldest goes at rotation. */
  maxFiles: number;
  /** Bytes of lines held while the disk catches up; past it lines are dropped. */
  bufferBytes: number;
  fs: LogFs;
  /** Lines dropped; `first` is true for the first drop since lines last flowed freely. */
  onDropped(count: number, reason: LogDropReason, first: boolean): void;
  /** A write failed (`err`) after succeeding, or succeeded again after failing (undefined). */
  onFailure(err: Error | undefined): void;
}

/** Longest wait before retrying a failed disk. */
const MAX_BACKOFF_MS = 5000;

/** Appends one function's lines to `<dir>/current.log`, never making the writer wait. */
export class LogFileWriter {
  readonly #dir: string;
  readonly #options: LogFileWriterOptions;
  #pending: string[] = [];
  #pendingBytes = 0;
  #handle: LogFileHandle | undefined;
  #size = 0;
  #running = false;
  #failing = false;
  #dropping = false;
  #backoffMs = 0;
  #closed = false;
  #wake: (() => void) | undefined;
  readonly #idle: Array<() => void> = [];

  constructor(dir: string, options: LogFileWriterOptions) {
    this.#dir = dir;
    this.#options = options;
  }

  /** Queues one serialized line (ending in a newline); false when it was dropped. */
  append(line: string): boolean {
    const bytes = Buffer.byteLength(line);
    if (this.#closed || this.#pendingBytes + bytes > this.#options.bufferBytes) {
      this.#options.onDropped(1, 'full', !this.#dropping);
      this.#dropping = true;
      return false;
    }
    this.#pending.push(line);
    this.#pendingBytes += bytes;
    if (!this.#running) {
      this.#running = true;
      // Lines written in one turn of the event loop go out as one write.
      setImmediate(() => void this.#drain());
    }
    return true;
  }

  /** Resolves once the lines queued so far are on disk (at once while the disk is failing). */
  flush(): Promise<void> {
    if (!this.#running || this.#failing) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Writes what is queued (one try each, no waiting on a failing disk) and closes the file. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    if (this.#running) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await this.#closeHandle();
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const lines = this.#pending;
      this.#pending = [];
      this.#pendingBytes = 0;
      try {
        await this.#write(Buffer.from(lines.join('')));
        if (this.#failing) {
          this.#failing = false;
          this.#backoffMs = 0;
          this.#options.onFailure(undefined);
        }
      } catch (err) {
        this.#options.onDropped(lines.length, 'failed', !this.#dropping);
        this.#dropping = true;
        await this.#closeHandle();
        if (!this.#failing) {
          this.#failing = true;
          this.#options.onFailure(err as Error);
          for (const resolve of this.#idle.splice(0)) resolve();
        }
        if (!this.#closed) await this.#sleep((this.#backoffMs = Math.min(Math.max(this.#backoffMs * 2, 100), MAX_BACKOFF_MS)));
      }
    }
    this.#running = false;
    if (!this.#failing) this.#dropping = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  async #write(data: Buffer): Promise<void> {
    const current = path.join(this.#dir, CURRENT_LOG);
    if (!this.#handle) {
      await this.#options.fs.mkdir(this.#dir);
      this.#handle = await this.#options.fs.openAppend(current);
      this.#size = this.#handle.size;
    }
    if (this.#size > 0 && this.#size + data.length > this.#options.maxBytes) {
      await this.#rotate(current);
      this.#handle = await this.#options.fs.openAppend(current);
      this.#size = this.#handle.size;
    }
    await this.#handle.write(data);
    this.#size += data.length;
  }

  /** current.log becomes current.log.1, each .N becomes .N+1, and the one past maxFiles goes. */
  async #rotate(current: string): Promise<void> {
    await this.#closeHandle();
    const { fs, maxFiles } = this.#options;
    const rotated = (n: number): string => `${current}.${n}`;
    await fs.remove(rotated(Math.max(1, maxFiles - 1)));
    for (let n = maxFiles - 2; n >= 1; n--) {
      await fs.rename(rotated(n), rotated(n + 1)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    if (maxFiles > 1) await fs.rename(current, rotated(1));
    else await fs.remove(current);
  }

  async #closeHandle(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close().catch(() => {});
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}
