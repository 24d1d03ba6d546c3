// WASI preview1 for WAGI handlers: args, environment, stdio, clocks and random, and the files
// shipped with the function (read-only, preopened as `/`) — and nothing else.
//
// No sockets or host environment exist here; without shipped files there are no preopened
// directories and path calls fail with ENOTCAPABLE; the environment is exactly what the request
// and manifest give.
// Clocks tell nothing of the host: monotonic and CPU time start at zero for each run, and CPU time
// is the run's own (its thread's CPU time since the run began).
import { webcrypto } from 'node:crypto';
import { threadCpuNs } from './thread-cpu-clock.js';
import { DIR_RIGHTS, FILE_RIGHTS, FileErrno, PreopenedFiles } from './wasi-files.js';

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
  /** The function's shipped files, preopened read-only as `/`; none when it ships none. */
  files?: PreopenedFiles;
}

/** A run over argv and environ given as blocks of NUL-terminated strings. */
export function newWasiRun(args: Uint8Array, env: Uint8Array, stdin: Uint8Array, maxStdout: number, filesDir?: string): WasiRun {
  return {
    ...(filesDir === undefined ? {} : { files: new PreopenedFiles(filesDir) }),
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
const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

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

  private text(ptr: number, len: number): string | undefined {
    if (ptr + len > this.bytes.length) return undefined;
    return textDecoder.decode(this.bytes.subarray(ptr, ptr + len));
  }

  /** Copies from an open file into the iovecs at its offset (or `at`, leaving the offset alone). */
  private readFile(files: PreopenedFiles, fd: number, iovs: number, iovsLen: number, nreadPtr: number, at?: bigint): number {
    const entry = files.entry(fd);
    if (!entry) return Errno.BADF;
    if (entry.kind !== 'file') return FileErrno.ISDIR;
    let offset = at === undefined ? entry.offset : Number(at);
    let read = 0;
    for (let i = 0; i < iovsLen; i++) {
      const ptr = this.view.getUint32(iovs + i * 8, true);
      const len = this.view.getUint32(iovs + i * 8 + 4, true);
      const n = Math.max(0, Math.min(len, entry.data.length - offset));
      if (n === 0) break;
      if (ptr + n > this.bytes.length) return Errno.FAULT;
      this.bytes.set(entry.data.subarray(offset, offset + n), ptr);
      offset += n;
      read += n;
      if (n < len) break;
    }
    if (at === undefined) entry.offset = offset;
    this.view.setUint32(nreadPtr, read, true);
    return Errno.SUCCESS;
  }

  private writeFilestat(ptr: number, stat: { filetype: number; size: bigint; ino: bigint; mtimNs: bigint }): void {
    for (let i = 0; i < 64; i += 8) this.view.setBigUint64(ptr + i, 0n, true);
    this.view.setBigUint64(ptr + 8, stat.ino, true);
    this.view.setUint8(ptr + 16, stat.filetype);
    this.view.setBigUint64(ptr + 24, 1n, true);
    this.view.setBigUint64(ptr + 32, stat.size, true);
    this.view.setBigUint64(ptr + 40, stat.mtimNs, true);
    this.view.setBigUint64(ptr + 48, stat.mtimNs, true);
    this.view.setBigUint64(ptr + 56, stat.mtimNs, true);
  }

  /** Directory entries from `cookie` on, each a 24-byte header and its name, cut at the buffer's end. */
  private readdir(files: PreopenedFiles, fd: number, buf: number, bufLen: number, cookie: bigint, bufusedPtr: number): number {
    const entry = files.entry(fd);
    if (!entry) return Errno.BADF;
    if (entry.kind !== 'dir') return FileErrno.NOTDIR;
    if (buf + bufLen > this.bytes.length) return Errno.FAULT;
    const entries = files.list(entry.inner);
    const out = new Uint8Array(bufLen);
    let used = 0;
    for (let i = Number(cookie); i < entries.length && used < bufLen; i++) {
      const e = entries[i]!;
      const name = textEncoder.encode(e.name);
      const record = new Uint8Array(24 + name.length);
      const rv = new DataView(record.buffer);
      rv.setBigUint64(0, BigInt(i + 1), true);
      rv.setBigUint64(8, e.ino, true);
      rv.setUint32(16, name.length, true);
      rv.setUint8(20, e.filetype);
      record.set(name, 24);
      const n = Math.min(record.length, bufLen - used);
      out.set(record.subarray(0, n), used);
      used += n;
    }
    this.bytes.set(out.subarray(0, used), buf);
    this.view.setUint32(bufusedPtr, used, true);
    return Errno.SUCCESS;
  }

  /** A path call that would change the files: EROFS inside the preopen, ENOTCAPABLE elsewhere. */
  private readOnly(dirFd: number, pathPtr: number, pathLen: number): number {
    const files = this.current().files;
    const guestPath = this.text(pathPtr, pathLen);
    if (!files || guestPath === undefined) return Errno.NOTCAPABLE;
    const resolved = files.resolve(dirFd, guestPath);
    return 'errno' in resolved ? resolved.errno : FileErrno.ROFS;
  }

  private buildImports(): Record<string, (...args: never[]) => number | bigint | void> {
    const badf = (): number => Errno.BADF;
    const notCapable = (): number => Errno.NOTCAPABLE;
    const readOnly = (dirFd: number, pathPtr: number, pathLen: number): number => this.readOnly(dirFd, pathPtr, pathLen);
    // Seeks and tells on stdio are ESPIPE; on a shipped file they move or read its offset.
    const fileOr = (fd: number, onFile: (files: PreopenedFiles) => number): number => {
      const files = this.current().files;
      if (fd > 2 && files) return onFile(files);
      return stdioOnly(fd);
    };
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
        if (fd > 2 && run.files) return this.readFile(run.files, fd, iovs, iovsLen, nread);
        if (fd !== 0) return Errno.BADF;
        return this.read(run, iovs, iovsLen, nread);
      },
      fd_pread: (fd: number, iovs: number, iovsLen: number, offset: bigint, nread: number) => {
        const files = this.current().files;
        return fd > 2 && files ? this.readFile(files, fd, iovs, iovsLen, nread, offset) : Errno.BADF;
      },
      fd_pwrite: badf,
      fd_close: (fd: number) => {
        if (fd <= 2) return Errno.SUCCESS;
        return this.current().files?.close(fd) ?? Errno.BADF;
      },
      fd_seek: (fd: number, offset: bigint, whence: number, newOffsetPtr: number) =>
        fileOr(fd, (files) => {
          const entry = files.entry(fd);
          if (!entry) return Errno.BADF;
          if (entry.kind !== 'file') return FileErrno.ISDIR;
          const base = whence === 0 ? 0n : whence === 1 ? BigInt(entry.offset) : whence === 2 ? BigInt(entry.data.length) : undefined;
          if (base === undefined || base + offset < 0n) return Errno.INVAL;
          entry.offset = Number(base + offset);
          this.view.setBigUint64(newOffsetPtr, base + offset, true);
          return Errno.SUCCESS;
        }),
      fd_tell: (fd: number, offsetPtr: number) =>
        fileOr(fd, (files) => {
          const entry = files.entry(fd);
          if (!entry) return Errno.BADF;
          if (entry.kind !== 'file') return FileErrno.ISDIR;
          this.view.setBigUint64(offsetPtr, BigInt(entry.offset), true);
          return Errno.SUCCESS;
        }),
      fd_sync: stdioOnly,
      fd_datasync: stdioOnly,
      fd_advise: stdioOnly,
      fd_allocate: stdioOnly,
      fd_fdstat_get: (fd: number, statPtr: number) => {
        const files = this.current().files;
        const entry = fd > 2 ? files?.entry(fd) : undefined;
        if (entry) {
          const dir = entry.kind === 'dir';
          this.view.setUint8(statPtr, dir ? 3 : 4);
          this.view.setUint16(statPtr + 2, 0, true);
          this.view.setBigUint64(statPtr + 8, dir ? DIR_RIGHTS : FILE_RIGHTS, true);
          this.view.setBigUint64(statPtr + 16, dir ? DIR_RIGHTS | FILE_RIGHTS : 0n, true);
          return Errno.SUCCESS;
        }
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
        const files = this.current().files;
        const entry = fd > 2 ? files?.entry(fd) : undefined;
        if (files && entry) {
          const stat = files.statPath(entry.inner);
          if (typeof stat === 'number') return stat;
          this.writeFilestat(statPtr, stat);
          return Errno.SUCCESS;
        }
        if (fd > 2) return Errno.BADF;
        for (let i = 0; i < 64; i += 8) this.view.setBigUint64(statPtr + i, 0n, true);
        this.view.setUint8(statPtr + 16, 0);
        return Errno.SUCCESS;
      },
      fd_filestat_set_size: stdioOnly,
      fd_filestat_set_times: stdioOnly,
      fd_prestat_get: (fd: number, prestatPtr: number) => {
        const name = this.current().files?.prestatName(fd);
        if (name === undefined) return Errno.BADF;
        this.view.setUint8(prestatPtr, 0);
        this.view.setUint32(prestatPtr + 4, textEncoder.encode(name).length, true);
        return Errno.SUCCESS;
      },
      fd_prestat_dir_name: (fd: number, pathPtr: number, pathLen: number) => {
        const name = this.current().files?.prestatName(fd);
        if (name === undefined) return Errno.BADF;
        const bytes = textEncoder.encode(name);
        if (pathLen < bytes.length || pathPtr + bytes.length > this.bytes.length) return Errno.INVAL;
        this.bytes.set(bytes, pathPtr);
        return Errno.SUCCESS;
      },
      fd_readdir: (fd: number, buf: number, bufLen: number, cookie: bigint, bufused: number) => {
        const files = this.current().files;
        return files ? this.readdir(files, fd, buf, bufLen, cookie, bufused) : Errno.BADF;
      },
      fd_renumber: badf,
      path_create_directory: (dirFd: number, pathPtr: number, pathLen: number) => readOnly(dirFd, pathPtr, pathLen),
      path_filestat_get: (dirFd: number, _flags: number, pathPtr: number, pathLen: number, statPtr: number) => {
        const files = this.current().files;
        const guestPath = this.text(pathPtr, pathLen);
        if (!files || guestPath === undefined) return Errno.NOTCAPABLE;
        const resolved = files.resolve(dirFd, guestPath);
        if ('errno' in resolved) return resolved.errno;
        const stat = files.statPath(resolved.inner);
        if (typeof stat === 'number') return stat;
        this.writeFilestat(statPtr, stat);
        return Errno.SUCCESS;
      },
      path_filestat_set_times: (dirFd: number, _flags: number, pathPtr: number, pathLen: number) => readOnly(dirFd, pathPtr, pathLen),
      path_link: notCapable,
      path_open: (dirFd: number, _dirflags: number, pathPtr: number, pathLen: number, oflags: number, rightsBase: bigint, _rightsInheriting: bigint, _fdflags: number, fdPtr: number) => {
        const files = this.current().files;
        const guestPath = this.text(pathPtr, pathLen);
        if (!files || guestPath === undefined) return Errno.NOTCAPABLE;
        const resolved = files.resolve(dirFd, guestPath);
        if ('errno' in resolved) return resolved.errno;
        const opened = files.open(resolved.inner, oflags, rightsBase);
        if ('errno' in opened) return opened.errno;
        this.view.setUint32(fdPtr, opened.fd, true);
        return Errno.SUCCESS;
      },
      path_readlink: (dirFd: number, pathPtr: number, pathLen: number) => (this.current().files ? readOnly(dirFd, pathPtr, pathLen) === FileErrno.ROFS ? Errno.INVAL : Errno.NOTCAPABLE : Errno.NOTCAPABLE),
      path_remove_directory: (dirFd: number, pathPtr: number, pathLen: number) => readOnly(dirFd, pathPtr, pathLen),
      path_rename: (dirFd: number, pathPtr: number, pathLen: number) => readOnly(dirFd, pathPtr, pathLen),
      path_symlink: (_oldPtr: number, _oldLen: number, dirFd: number, pathPtr: number, pathLen: number) => readOnly(dirFd, pathPtr, pathLen),
      path_unlink_file: (dirFd: number, pathPtr: number, pathLen: number) => readOnly(dirFd, pathPtr, pathLen),
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
