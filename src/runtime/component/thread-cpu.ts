// CPU time of the calling thread (Linux), for the component worker's figures: wall time counts other processes too.
import { openSync, readSync } from 'node:fs';

/** Open on the first call, on the thread that reads it; null where the OS gives no such file. */
let fd: number | null | undefined;
const buffer = Buffer.alloc(64);

/**
 * Nanoseconds the calling thread has run on a CPU, from /proc/thread-self/schedstat (about 7 µs a
 * read, so callers sample); 0 where unavailable. Node 20's process.cpuUsage counts every thread.
 */
export function threadCpuNs(): number {
  if (fd === null) return 0;
  try {
    // The file is resolved at open, so it stays this thread's however it is read later.
    fd ??= openSync('/proc/thread-self/schedstat', 'r');
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    const space = buffer.indexOf(0x20);
    return Number(buffer.toString('latin1', 0, space >= 0 && space < n ? space : n).trim());
  } catch {
    fd = null;
    return 0;
  }
}
