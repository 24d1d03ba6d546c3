// Turns a function spec and its artifact into an InstanceFactory, per runtime; every check runs at deploy.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { LamplighterError, ModuleError } from '../errors/index.js';
import type { InstanceFactory, LogSink } from '../instance/index.js';
import type { FunctionSpec } from '../manifest/index.js';
import { deployStepChannel, type DeployStepEvent } from '../observability/index.js';
import { componentCacheDir, createComponentFactory, prepareComponentOffThread, type WorkerBudget } from '../runtime/component/index.js';
import { createProcessFactory } from '../runtime/process/index.js';
import { compileWagiModule, createWagiFactory, type SandboxPool } from '../runtime/wasm/index.js';

/** What building a factory may use. */
export interface RuntimeContext {
  pool: SandboxPool;
  /** Reads an artifact named by the manifest (`source`). */
  artifact(name: string): Promise<Uint8Array>;
  /** The sha256 digest of that artifact, known from the deploy without reading it. */
  artifactDigest(name: string): string;
  /** Directory the app was deployed from (process functions run there). */
  appDir: string | undefined;
  log: LogSink;
  /** Told the thread time of each WAGI or component run, in seconds. @default not told */
  onRun?: (seconds: number) => void;
  /** Directory of the function's shipped files, laid out for it. @default none */
  filesDir?: string;
  /** The node's component worker threads, shared by its component functions. @default the process's */
  componentWorkers?: WorkerBudget;
}

/**
 * Checks a function and prepares what its instances need; throws naming the function and the
 * reason. The work is published as a `preparing <runtime>` step on deployStepChannel.
 */
export async function buildFactory(spec: FunctionSpec, ctx: RuntimeContext): Promise<InstanceFactory> {
  const step = `preparing ${spec.runtime}`;
  const started = performance.now();
  const publish = (event: Omit<DeployStepEvent, 'function' | 'step'>): void => {
    if (deployStepChannel.hasSubscribers) deployStepChannel.publish({ function: spec.name, step, ...event } satisfies DeployStepEvent);
  };
  publish({ phase: 'start' });
  let outcome = 'failed';
  try {
    const built = await prepareFactory(spec, ctx);
    outcome = built.outcome ?? 'ready';
    return built.factory;
  } finally {
    publish({ phase: 'end', durationMs: performance.now() - started, outcome });
  }
}

async function prepareFactory(spec: FunctionSpec, ctx: RuntimeContext): Promise<{ factory: InstanceFactory; outcome?: string }> {
  try {
    switch (spec.runtime) {
      case 'wagi': {
        const bytes = await ctx.artifact(spec.source as string);
        const compiled = await compileWagiModule(bytes, spec.limits.memory);
        return { factory: createWagiFactory(compiled, spec, { pool: ctx.pool, log: ctx.log, ...(ctx.onRun ? { onRun: ctx.onRun } : {}), ...(ctx.filesDir ? { filesDir: ctx.filesDir } : {}) }) };
      }
      case 'process': {
        if (!ctx.appDir) throw new ModuleError('a process function needs the app directory it was deployed from');
        return { factory: createProcessFactory(spec, { appDir: path.resolve(ctx.appDir), log: ctx.log }) };
      }
      case 'component': {
        const source = spec.source as string;
        // Checks, transpile (or the per-user cache, read from the environment at each deploy) and
        // compile run on a worker thread.
        const { prepared, modules, cached } = await prepareComponentOffThread(spec, {
          digest: ctx.artifactDigest(source),
          read: () => ctx.artifact(source),
          cacheDir: componentCacheDir(),
          onNote: (text) => ctx.log('stderr', `${text}\n`),
        });
        const factory = createComponentFactory(prepared, spec, { log: ctx.log, modules, ...(ctx.onRun ? { onRun: ctx.onRun } : {}), ...(ctx.filesDir ? { filesDir: ctx.filesDir } : {}), ...(ctx.componentWorkers ? { workerBudget: ctx.componentWorkers } : {}) });
        await factory.compiled;
        return { factory, outcome: cached ? 'from the cache' : 'transpiled' };
      }
    }
  } catch (err) {
    if (err instanceof LamplighterError) {
      throw new LamplighterError(err.code, `Cannot deploy function '${spec.name}': ${err.message}`, { cause: err, detail: err.detail });
    }
    throw err;
  }
}
