// The WAGI runtime: validates modules at deploy time and lights instances that run them per request.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ErrorCodes, functionTimeout, LamplighterError, ModuleError } from '../../errors/index.js';
import { hasRequestBody, readBodyLimited, type Instance, type InstanceExit, type InstanceFactory, type InstanceState, type InvocationRequest, type InvocationResponse, type LogSink } from '../../instance/index.js';
import type { FunctionSpec } from '../../manifest/index.js';
import { traceOf, type TraceSpan } from '../../tracing/index.js';
import { manifestEnvPrefix, parseWagiOutput, wagiArgs, wagiEnv } from './wagi-cgi.js';
import { packRunInput } from './sandbox-protocol.js';
import { WasiHost } from './wasi-host.js';
import { binaryKind, capMemory, importMemory, MEMORY_IMPORT, memoryDeclaration } from './wasm-binary.js';
import type { SandboxPool, SandboxResult } from './sandbox-pool.js';

/** A WAGI module checked and compiled at deploy time; shared by all its instances and workers. */
export interface CompiledWagiModule {
  /** sha256 of the memory-capped bytes; names the module in the sandbox workers. */
  readonly key: string;
  /** Compiled with its memory turned into an import, so workers can hand it a zeroed, reused one. */
  readonly module: WebAssembly.Module;
  /** Pages of linear memory the module starts with. */
  readonly initialPages: number;
  /** Pages the memory may grow to (the manifest's limits.memory, or less if the module says so). */
  readonly maximumPages: number;
}

const WASI_MODULE = 'wasi_snapshot_preview1';
const EMPTY_BODY = Buffer.alloc(0);
const WASI_FUNCTIONS = new Set(WasiHost.functionNames());

/**
 * Checks a WAGI module and compiles it once: a WASI preview1 command (exports `_start` and
 * `memory`), importing only WASI functions the host provides, with memory within `memoryLimit`.
 * Every rejection names what is wrong; nothing is left to fail at request time.
 */
export async function compileWagiModule(bytes: Uint8Array, memoryLimit: number): Promise<CompiledWagiModule> {
  const kind = binaryKind(bytes);
  if (kind === 'component') throw new ModuleError('This is a WebAssembly component, not a core module; use runtime = "component"');
  if (kind === 'unknown') throw new ModuleError('Not a WebAssembly module (bad magic number or version)');
  if (memoryDeclaration(bytes).imported) throw new ModuleError('The module imports its linear memory; a WASI command must define and export its own');
  const capped = capMemory(bytes, memoryLimit);
  if (!capped.declared) throw new ModuleError('The module defines no linear memory; a WASI command must define and export one');
  const hosted = importMemory(capped.bytes);
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(hosted.bytes as Uint8Array<ArrayBuffer>);
  } catch (err) {
    throw new ModuleError(`Not a valid WebAssembly module: ${(err as Error).message}`, { cause: err });
  }
  const unknown = WebAssembly.Module.imports(module)
    .filter((imp) => !(imp.module === MEMORY_IMPORT.module && imp.name === MEMORY_IMPORT.name))
    .filter((imp) => imp.module !== WASI_MODULE || imp.kind !== 'function' || !WASI_FUNCTIONS.has(imp.name))
    .map((imp) => `${imp.module}.${imp.name}`);
  if (unknown.length > 0) throw new ModuleError(`The module imports what the host does not provide: ${unknown.join(', ')}`, { detail: { unknownImports: unknown } });
  const exports = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  if (exports.get('_start') !== 'function') throw new ModuleError('The module is not a WASI command: it does not export a _start function');
  if (exports.get('memory') !== 'memory') throw new ModuleError('The module does not export its linear memory as "memory"');
  return {
    key: createHash('sha256').update(hosted.bytes).digest('hex'),
    module,
    initialPages: hosted.initialPages,
    maximumPages: hosted.maximumPages,
  };
}

/** Options for {@link createWagiFactory}. */
export interface WagiFactoryOptions {
  /** The node's sandbox workers. */
  pool: SandboxPool;
  /** Where the handler's stderr goes. */
  log: LogSink;
  /** Told the thread time of each run, in seconds (the function CPU metric). @default not told */
  onRun?: (seconds: number) => void;
  /** Directory of the function's shipped files (`files`), preopened read-only as `/`. @default none */
  filesDir?: string;
}

/** An InstanceFactory for WAGI functions; names its module in the sandbox pool. */
export interface WagiFactory extends InstanceFactory {
  /** The key the sandbox workers know the compiled module by. */
  readonly moduleKey: string;
}

/** Lights WAGI instances of one function revision. */
export function createWagiFactory(compiled: CompiledWagiModule, spec: FunctionSpec, options: WagiFactoryOptions): WagiFactory {
  let live = 0;
  const argv0 = path.basename(spec.source ?? spec.name);
  options.pool.start();
  const onInstanceClosed = (): void => {
    live--;
    // The last instance out drops the compiled module from every worker (unless another lit
    // function runs the same bytes): a function at zero holds nothing in sandbox memory.
    if (live === 0) options.pool.release(compiled.key);
  };
  return {
    moduleKey: compiled.key,
    create(id: string): Instance {
      if (live === 0) options.pool.acquire(compiled.key);
      live++;
      return new WagiInstance(id, spec, compiled, options, argv0, onInstanceClosed);
    },
    async close(): Promise<void> {
      // Instances release the module as they stop; nothing is held once they have.
    },
  };
}

class WagiInstance implements Instance {
  state: InstanceState = 'ready';
  readonly ready = Promise.resolve();
  readonly closed: Promise<InstanceExit>;
  private markClosed!: (exit: InstanceExit) => void;
  private inFlight = 0;
  /** Linear memory the last run ended with: a run's memory is its own, made and dropped with it. */
  private lastMemoryBytes = 0;
  private drained: (() => void) | undefined;
  private draining: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private readonly envPrefix: string;

  constructor(
    readonly id: string,
    private readonly spec: FunctionSpec,
    private readonly compiled: CompiledWagiModule,
    private readonly options: WagiFactoryOptions,
    private readonly argv0: string,
    private readonly onClosed: () => void,
  ) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.envPrefix = manifestEnvPrefix(spec.env);
  }

  get functionName(): string {
    return this.spec.name;
  }

  /** Memory of the runs in flight, each counted at the size the last run ended with. */
  figures(): Readonly<Record<string, number>> {
    return { memoryBytes: this.inFlight * Math.max(this.lastMemoryBytes, this.compiled.initialPages * 65_536) };
  }

  async handle(request: InvocationRequest): Promise<InvocationResponse> {
    if (this.state !== 'ready') throw new LamplighterError(ErrorCodes.SHUTTING_DOWN, `Instance ${this.id} of '${this.spec.name}' is ${this.state}`);
    this.inFlight++;
    try {
      return await this.run(request);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.drained?.();
    }
  }

  private async run(request: InvocationRequest): Promise<InvocationResponse> {
    const { spec } = this;
    const contentLength = request.headers['content-length'];
    const body = hasRequestBody(request) ? await readBodyLimited(request.body, spec.limits.bodyBytes, contentLength, 'limits.body_size') : EMPTY_BODY;
    const trace = traceOf(request);
    if (trace === undefined) return this.answer(request, await this.runInSandbox(request, body, undefined));
    // Traced: the run is a span, and the module sees it (not the client's) as HTTP_TRACEPARENT.
    const span = trace.startRun('wagi', this.id);
    try {
      const response = this.answer(request, await this.runInSandbox(request, body, span));
      span.setStatus(response.status);
      return response;
    } catch (err) {
      span.fail(err);
      throw err;
    } finally {
      span.end();
    }
  }

  private runInSandbox(request: InvocationRequest, body: Buffer, span: TraceSpan | undefined): Promise<SandboxResult> {
    const { spec } = this;
    const env = wagiEnv(request, body.length, this.envPrefix, span === undefined ? undefined : { traceparent: span.traceparent });
    return this.options.pool.run({
      key: this.compiled.key,
      // Fairness is per function: two functions running the same bytes are two tenants.
      owner: spec.name,
      module: this.compiled.module,
      memoryPages: [this.compiled.initialPages, this.compiled.maximumPages],
      input: packRunInput(`${wagiArgs(request, this.argv0, spec.argv).join('\0')}\0`, env, body),
      maxStdout: spec.limits.responseBytes,
      ...(this.options.filesDir === undefined ? {} : { filesDir: this.options.filesDir }),
      deadline: request.deadline ?? performance.now() + spec.limits.timeoutMs,
      // The pool's watchdog and the admission step race for the same deadline: one error either way.
      timeoutError: () => functionTimeout(spec.name, spec.limits.timeoutMs),
      // Read only if the run has to queue: most runs never create the request's AbortSignal.
      signal: { get aborted() { return request.signal.aborted; } },
    });
  }

  /** The response of a finished run, or the error its failure is. */
  private answer(request: InvocationRequest, result: SandboxResult): InvocationResponse {
    const { spec } = this;
    if (result.runMs !== undefined) this.options.onRun?.(result.runMs / 1000);
    if (result.memoryBytes) this.lastMemoryBytes = result.memoryBytes;
    if (result.stderr.length > 0) this.options.log('stderr', Buffer.from(result.stderr).toString('utf8'));
    if (result.error) {
      if (result.error.kind === 'internal') {
        throw new LamplighterError(ErrorCodes.INTERNAL, `Function '${spec.name}' could not run: ${result.error.message}`);
      }
      if (result.error.kind === 'output-limit') {
        throw new LamplighterError(ErrorCodes.RESPONSE_TOO_LARGE, `Function '${spec.name}' wrote a response over the limit of ${spec.limits.responseBytes} bytes (limits.response_size)`);
      }
      this.options.log('stderr', `trap: ${result.error.message} (request ${request.id})`);
      throw new LamplighterError(ErrorCodes.HANDLER_TRAP, `Function '${spec.name}' trapped: ${result.error.message}`);
    }
    if (result.exitCode !== 0) {
      this.options.log('stderr', `exited with code ${result.exitCode} (request ${request.id})`);
      throw new LamplighterError(ErrorCodes.HANDLER_TRAP, `Function '${spec.name}' exited with code ${result.exitCode}`);
    }
    return parseWagiOutput(spec.name, result.stdout);
  }

  drain(): Promise<void> {
    if (this.state === 'ready') this.state = 'draining';
    if (!this.draining) {
      this.draining = this.inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.drained = resolve));
    }
    return this.draining;
  }

  stop(): Promise<void> {
    // One stop however often it is asked for: the instance is released exactly once.
    this.stopping ??= this.drain().then(() => {
      this.state = 'stopped';
      this.onClosed();
      this.markClosed({ reason: 'stopped' });
    });
    return this.stopping;
  }
}
