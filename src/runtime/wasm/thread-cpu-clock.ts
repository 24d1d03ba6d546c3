// CPU time of the calling thread, for WASI's CPU-time clocks: what one run used, not the process.
import { openSync, readSync } from 'node:fs';

/** Open on the first call, on the thread that reads it; null where the OS gives no such file. */
let fd: number | null | undefined;
const buffer = Buffer.alloc(64);

/**
 * Nanoseconds the calling thread has spent on a CPU, from Linux's /proc/thread-self/schedstat
 * (its first field; exact to the nanosecond, about 7 µs a read). Undefined where unavailable.
 * Node 20 has no per-thread CPU clock of its own (process.cpuUsage counts every thread).
 */
export function threadCpuNs(): bigint | undefined {
  if (fd === null) return undefined;
  try {
    // The file is resolved at open, so it stays this thread's however it is read later.
    fd ??= openSync('/proc/thread-self/schedstat', 'r');
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    const space = buffer.indexOf(0x20);
    return BigInt(buffer.toString('latin1', 0, space >= 0 && space < n ? space : n).trim());
  } catch {
    fd = null;
    return undefined;
  }
}
