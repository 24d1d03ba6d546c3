// WASI preview1 for WAGI handlers: args, environment, stdio, clocks and random — and nothing else.
//
// No file system, sockets or host environment exist here: path calls fail with ENOTCAPABLE, there
// are no preopened directories, and the environment is exactly what the request and manifest give.
// Clocks tell nothing of the host: monotonic and CPU time start at zero for each run, and CPU time
// is the run's own (its thread's CPU time since the run began).
import { webcrypto } from 'node:crypto';
import { threadCpuNs } from './thread-cpu-clock.js';

/** WASI errno values used here. */
const Errno = {
  SUCCESS: 0,
  BADF: 8,
  FAULT: 21,
  INVAL: 28,
  NOSYS: 52,
  NOTSOCK: 57,
  SPIPE: 70,
  NOTCAPABLE: 76,
} as const;

/** Thrown by `proc_exit` to unwind the module; carries the exit code. */
export class WasiExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** Thrown when a handler writes more than its response cap. */
export class OutputLimitExceeded extends Error {
  constructor(readonly limit: number) {
    super(`the handler wrote more than ${limit} bytes`);
  }
}

/** NUL-terminated strings laid end to end: the form argv and environ take in guest memory. */
export interface StringBlock {
  bytes: Uint8Array;
  /** Offset of each string in `bytes`. */
  offsets: number[];
}

/** Finds the strings of a block of NUL-terminated UTF-8 strings laid end to end. */
export function readStringBlock(bytes: Uint8Array): StringBlock {
  const offsets: number[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0) {
      offsets.push(start);
      start = i + 1;
    }
  }
  return { bytes, offsets };
}

/** Everything one run of a command can see and produce. */
export interface WasiRun {
  /** argv, argv[0] included. */
  args: StringBlock;
  /** `NAME=value` entries. */
  env: StringBlock;
  stdin: Uint8Array;
  stdinOffset: number;
  stdout: Uint8Array[];
  stdoutBytes: number;
  stderr: Uint8Array[];
  stderrBytes: number;
  /** Cap on stdout bytes. */
  maxStdout: number;
  /** Cap on stderr bytes kept (the rest is dropped, not an error). */
  maxStderr: number;
}

/** A run over argv and environ given as blocks of NUL-terminated strings. */
export function newWasiRun(args: Uint8Array, env: Uint8Array, stdin: Uint8Array, maxStdout: number): WasiRun {
  return {
    args: readStringBlock(args),
    env: readStringBlock(env),
    stdin,
    stdinOffset: 0,
    stdout: [],
    stdoutBytes: 0,
    stderr: [],
    stderrBytes: 0,
    maxStdout,
    maxStderr: 64 * 1024,
  };
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * One set of WASI imports per worker, bound to whichever run and memory are current; building
 * the import object once keeps per-request instantiation cheap.
 */
export class WasiHost {
  private memory: WebAssembly.Memory | undefined;
  private view: DataView = new DataView(new ArrayBuffer(0));
  private bytes: Uint8Array = new Uint8Array(0);
  private run: WasiRun | undefined;
  /** When the current run began (process.hrtime), the zero of its monotonic clock. */
  private runStartNs = 0n;
  /**
   * The thread's CPU time when the run began: noted at begin for modules that import
   * clock_time_get, else at the first read (or undefined where the OS has no thread clock).
   */
  private cpuStartNs: bigint | undefined;
  /** Time the run spent asleep in poll_oneoff (not CPU time, where no thread clock exists). */
  private sleptNs = 0n;
  /** The `wasi_snapshot_preview1` import object. */
  readonly imports: Record<string, (...args: never[]) => number | bigint | void>;

  constructor() {
    this.imports = this.buildImports();
  }

  /** Names of every preview1 function this host provides. */
  static functionNames(): string[] {
    return Object.keys(new WasiHost().imports);
  }

  /**
   * Binds the next run to an instance's memory. `cpuClock`: the module can read a CPU-time clock
   * (imports clock_time_get), so the thread's CPU time is noted now; other runs skip the read.
   */
  begin(run: WasiRun, memory: WebAssembly.Memory, cpuClock = true): void {
    this.run = run;
    this.memory = memory;
    this.refresh();
    this.runStartNs = process.hrtime.bigint();
    this.sleptNs = 0n;
    this.cpuStartNs = cpuClock ? threadCpuNs() : undefined;
  }

  /** Unbinds the run so nothing of it outlives the request. */
  end(): void {
    this.run = undefined;
    this.memory = undefined;
    this.view = new DataView(new ArrayBuffer(0));
    this.bytes = new Uint8Array(0);
  }

  private refresh(): void {
    const buffer = (this.memory as WebAssembly.Memory).buffer;
    if (this.bytes.buffer !== buffer || this.bytes.byteLength !== buffer.byteLength) {
      this.view = new DataView(buffer);
      this.bytes = new Uint8Array(buffer);
    }
  }

  private current(): WasiRun {
    if (!this.run) throw new Error('WASI call outside a run');
    // memory.grow detaches the old buffer; look again before every access.
    this.refresh();
    return this.run;
  }

  private copyStrings(block: StringBlock, ptrs: number, buf: number): number {
    if (buf + block.bytes.length > this.bytes.length || ptrs + block.offsets.length * 4 > this.bytes.length) return Errno.FAULT;
    for (let i = 0; i < block.offsets.length; i++) this.view.setUint32(ptrs + i * 4, buf + (block.offsets[i] as number), true);
    this.bytes.set(block.bytes, buf);
    return Errno.SUCCESS;
  }

  private sizes(block: StringBlock, countPtr: number, sizePtr: number): number {
    this.view.setUint32(countPtr, block.offsets.length, true);
    this.view.setUint32(sizePtr, block.bytes.length, true);
    return Errno.SUCCESS;
  }

  private write(run: WasiRun, fd: number, iovs: number, iovsLen: number, nwrittenPtr: number): number {
    let written = 0;
    for (let i = 0; i < iovsLen; i++) {
      const ptr = this.view.getUint32(iovs + i * 8, true);
      const len = this.view.getUint32(iovs + i * 8 + 4, true);
      if (len === 0) continue;
      if (ptr + len > this.bytes.length) return Errno.FAULT;
      const chunk = this.bytes.slice(ptr, ptr + len);
      if (fd === 1) {
        run.stdoutBytes += len;
        if (run.stdoutBytes > run.maxStdout) throw new OutputLimitExceeded(run.maxStdout);
        run.stdout.push(chunk);
      } else if (run.stderrBytes < run.maxStderr) {
        run.stderrBytes += len;
        run.stderr.push(chunk);
      }
      written += len;
    }
    this.view.setUint32(nwrittenPtr, written, true);
    return Errno.SUCCESS;
  }

  private read(run: WasiRun, iovs: number, iovsLen: number, nreadPtr: number): number {
    let read = 0;
    for (let i = 0; i < iovsLen; i++) {
      const ptr = this.view.getUint32(iovs + i * 8, true);
      const len = this.view.getUint32(iovs + i * 8 + 4, true);
      const left = run.stdin.length - run.stdinOffset;
      const n = Math.min(len, left);
      if (n <= 0) break;
      if (ptr + n > this.bytes.length) return Errno.FAULT;
      this.bytes.set(run.stdin.subarray(run.stdinOffset, run.stdinOffset + n), ptr);
      run.stdinOffset += n;
      read += n;
      if (n < len) break;
    }
    this.view.setUint32(nreadPtr, read, true);
    return Errno.SUCCESS;
  }

  private now(clockId: number): bigint | undefined {
    switch (clockId) {
      case 0: // realtime: the time of day, the same for everyone (to the millisecond)
        return BigInt(Date.now()) * 1_000_000n;
      case 1: // monotonic: time since this run began
        return process.hrtime.bigint() - this.runStartNs;
      case 2: // process cputime: a run is the whole process the module sees
      case 3: // thread cputime
        return this.cpuTime();
      default:
        return undefined;
    }
  }

  /**
   * CPU time the run has used: its thread's, counted from the run's start. Where the OS gives no
   * thread clock, the run's elapsed time less its sleeps (a run never yields its thread otherwise).
   */
  private cpuTime(): bigint {
    const thread = threadCpuNs();
    if (thread !== undefined) {
      // Not noted at begin (the module imports no clock_time_get, yet asks through poll_oneoff):
      // count the run's time until now as CPU time, and the thread's own from here on.
      this.cpuStartNs ??= thread - (process.hrtime.bigint() - this.runStartNs - this.sleptNs);
      return thread > this.cpuStartNs ? thread - this.cpuStartNs : 0n;
    }
    const elapsed = process.hrtime.bigint() - this.runStartNs - this.sleptNs;
    return elapsed > 0n ? elapsed : 0n;
  }

  private pollOneoff(inPtr: number, outPtr: number, nsubs: number, neventsPtr: number): number {
    // Subscriptions are 48 bytes: userdata u64, tag u8, then the clock or fd body.
    let timeoutNs: bigint | undefined;
    for (let i = 0; i < nsubs; i++) {
      const base = inPtr + i * 48;
      if (this.view.getUint8(base + 8) !== 0) continue;
      const clockId = this.view.getUint32(base + 16, true);
      let ns = this.view.getBigUint64(base + 24, true);
      const absolute = (this.view.getUint16(base + 40, true) & 1) === 1;
      if (absolute) {
        const now = this.now(clockId) ?? 0n;
        ns = ns > now ? ns - now : 0n;
      }
      if (timeoutNs === undefined || ns < timeoutNs) timeoutNs = ns;
    }
    // Only clocks can block here (stdin is always ready), so sleeping the shortest timeout is exact.
    const hasFd = Array.from({ length: nsubs }, (_, i) => this.view.getUint8(inPtr + i * 48 + 8)).some((tag) => tag !== 0);
    if (!hasFd && timeoutNs !== undefined && timeoutNs > 0n) {
      const before = process.hrtime.bigint();
      Atomics.wait(sleepCell, 0, 0, Number(timeoutNs / 1_000_000n));
      this.sleptNs += process.hrtime.bigint() - before;
    }
    this.refresh();
    let events = 0;
    for (let i = 0; i < nsubs; i++) {
      const base = inPtr + i * 48;
      const tag = this.view.getUint8(base + 8);
      if (tag === 0 && hasFd) continue;
      const out = outPtr + events * 32;
      this.view.setBigUint64(out, this.view.getBigUint64(base, true), true);
      this.view.setUint16(out + 8, Errno.SUCCESS, true);
      this.view.setUint8(out + 10, tag);
      this.view.setBigUint64(out + 16, 0n, true);
      events++;
    }
    this.view.setUint32(neventsPtr, events, true);
    return Errno.SUCCESS;
  }

  private buildImports(): Record<string, (...args: never[]) => number | bigint | void> {
    const badf = (): number => Errno.BADF;
    const notCapable = (): number => Errno.NOTCAPABLE;
    const stdioOnly = (fd: number): number => (fd <= 2 ? Errno.SPIPE : Errno.BADF);
    // Only stdio is open, and it is no socket: ENOTSOCK for it, EBADF for a descriptor that is
    // not open. (A socket would answer ENOTCAPABLE: the sandbox grants no network.)
    const notSocket = (fd: number): number => (fd <= 2 ? Errno.NOTSOCK : Errno.BADF);
    return {
      args_get: (argv: number, buf: number) => this.copyStrings(this.current().args, argv, buf),
      args_sizes_get: (countPtr: number, sizePtr: number) => this.sizes(this.current().args, countPtr, sizePtr),
      environ_get: (environ: number, buf: number) => this.copyStrings(this.current().env, environ, buf),
      environ_sizes_get: (countPtr: number, sizePtr: number) => this.sizes(this.current().env, countPtr, sizePtr),
      clock_res_get: (clockId: number, resPtr: number) => {
        this.current();
        if (clockId > 3) return Errno.INVAL;
        this.view.setBigUint64(resPtr, clockId === 0 ? 1_000_000n : 1_000n, true);
        return Errno.SUCCESS;
      },
      clock_time_get: (clockId: number, _precision: bigint, timePtr: number) => {
        this.current();
        const now = this.now(clockId);
        if (now === undefined) return Errno.INVAL;
        this.view.setBigUint64(timePtr, now, true);
        return Errno.SUCCESS;
      },
      fd_write: (fd: number, iovs: number, iovsLen: number, nwritten: number) => {
        const run = this.current();
        if (fd !== 1 && fd !== 2) return Errno.BADF;
        return this.write(run, fd, iovs, iovsLen, nwritten);
      },
      fd_read: (fd: number, iovs: number, iovsLen: number, nread: number) => {
        const run = this.current();
        if (fd !== 0) return Errno.BADF;
        return this.read(run, iovs, iovsLen, nread);
      },
      fd_pread: badf,
      fd_pwrite: badf,
      fd_close: (fd: number) => (fd <= 2 ? Errno.SUCCESS : Errno.BADF),
      fd_seek: stdioOnly,
      fd_tell: stdioOnly,
      fd_sync: stdioOnly,
      fd_datasync: stdioOnly,
      fd_advise: stdioOnly,
      fd_allocate: stdioOnly,
      fd_fdstat_get: (fd: number, statPtr: number) => {
        this.current();
        if (fd > 2) return Errno.BADF;
        // Filetype "unknown" rather than "character device": the guest then buffers stdout fully,
        // which turns a response into one or two fd_write calls instead of one per line.
        this.view.setUint8(statPtr, 0);
        this.view.setUint16(statPtr + 2, 0, true);
        this.view.setBigUint64(statPtr + 8, fd === 0 ? 0x2n : 0x40n, true);
        this.view.setBigUint64(statPtr + 16, 0n, true);
        return Errno.SUCCESS;
      },
      fd_fdstat_set_flags: stdioOnly,
      fd_fdstat_set_rights: stdioOnly,
      fd_filestat_get: (fd: number, statPtr: number) => {
        this.current();
        if (fd > 2) return Errno.BADF;
        for (let i = 0; i < 64; i += 8) this.view.setBigUint64(statPtr + i, 0n, true);
        this.view.setUint8(statPtr + 16, 0);
        return Errno.SUCCESS;
      },
      fd_filestat_set_size: stdioOnly,
      fd_filestat_set_times: stdioOnly,
      fd_prestat_get: badf,
      fd_prestat_dir_name: badf,
      fd_readdir: badf,
      fd_renumber: badf,
      path_create_directory: notCapable,
      path_filestat_get: notCapable,
      path_filestat_set_times: notCapable,
      path_link: notCapable,
      path_open: notCapable,
      path_readlink: notCapable,
      path_remove_directory: notCapable,
      path_rename: notCapable,
      path_symlink: notCapable,
      path_unlink_file: notCapable,
      poll_oneoff: (inPtr: number, outPtr: number, nsubs: number, nevents: number) => {
        this.current();
        return this.pollOneoff(inPtr, outPtr, nsubs, nevents);
      },
      proc_exit: (code: number) => {
        throw new WasiExit(code);
      },
      proc_raise: () => Errno.NOSYS,
      sched_yield: () => Errno.SUCCESS,
      random_get: (buf: number, len: number) => {
        this.current();
        if (buf + len > this.bytes.length) return Errno.FAULT;
        for (let off = 0; off < len; off += 65_536) {
          webcrypto.getRandomValues(this.bytes.subarray(buf + off, buf + Math.min(len, off + 65_536)));
        }
        return Errno.SUCCESS;
      },
      sock_accept: notSocket,
      sock_recv: notSocket,
      sock_send: notSocket,
      sock_shutdown: notSocket,
    };
  }
}
