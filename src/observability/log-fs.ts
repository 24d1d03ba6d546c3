// The few file operations the function log files make, behind an interface so tests can slow them or make them fail.
import { mkdir, open, rename, rm } from 'node:fs/promises';

/** A log file opened for appending. */
export interface LogFileHandle {
  /** Bytes in the file when it was opened (after any repair). */
  readonly size: number;
  /** Appends `data` in full. */
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Where function log files are written. */
export interface LogFs {
  /** Creates `dir` and its parents. */
  mkdir(dir: string): Promise<void>;
  /**
   * Opens `file` for appending, creating it. A file whose last line was torn (a crash in the
   * middle of a write) gets a newline first, so the next line is not glued to the torn one.
   */
  openAppend(file: string): Promise<LogFileHandle>;
  rename(from: string, to: string): Promise<void>;
  /** Removes a file or directory; a missing one is not an error. */
  remove(target: string): Promise<void>;
}

/** {@link LogFs} on node:fs. */
export const nodeLogFs: LogFs = {
  async mkdir(dir) {
    await mkdir(dir, { recursive: true });
  },
  async openAppend(file) {
    const fh = await open(file, 'a+');
    try {
      let size = (await fh.stat()).size;
      if (size > 0) {
        const last = Buffer.alloc(1);
        await fh.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) {
          await fh.write('\n');
          size += 1;
        }
      }
      return {
        size,
        async write(data) {
          // A regular file takes the whole write at once in practice; the loop covers the rest.
          let offset = 0;
          while (offset < data.length) offset += (await fh.write(data, offset)).bytesWritten;
        },
        close: () => fh.close(),
      };
    } catch (err) {
      await fh.close();
      throw err;
    }
  },
  rename: (from, to) => rename(from, to),
  async remove(target) {
    await rm(target, { recursive: true, force: true });
  },
};
