// Turns a function spec and its artifact into an InstanceFactory, per runtime; every check runs at deploy.
import path from 'node:path';
import { ErrorCodes, LamplighterError, ModuleError } from '../errors/index.js';
import type { InstanceFactory, LogSink } from '../instance/index.js';
import type { FunctionSpec } from '../manifest/index.js';
import { createProcessFactory } from '../runtime/process/index.js';
import { compileWagiModule, createWagiFactory, type SandboxPool } from '../runtime/wasm/index.js';

/** What building a factory may use. */
export interface RuntimeContext {
  pool: SandboxPool;
  /** Reads an artifact named by the manifest (`source`). */
  artifact(name: string): Promise<Uint8Array>;
  /** Directory the app was deployed from (process functions run there). */
  appDir: string | undefined;
  log: LogSink;
}

/** Checks a function and prepares what its instances need; throws naming the function and the reason. */
export async function buildFactory(spec: FunctionSpec, ctx: RuntimeContext): Promise<InstanceFactory> {
  try {
    switch (spec.runtime) {
      case 'wagi': {
        const bytes = await ctx.artifact(spec.source as string);
        const compiled = await compileWagiModule(bytes, spec.limits.memory);
        return createWagiFactory(compiled, spec, { pool: ctx.pool, log: ctx.log });
      }
      case 'process': {
        if (!ctx.appDir) throw new ModuleError('a process function needs the app directory it was deployed from');
        return createProcessFactory(spec, { appDir: path.resolve(ctx.appDir), log: ctx.log });
      }
      case 'component':
        throw new ModuleError('runtime "component" is not available on this node yet');
    }
  } catch (err) {
    if (err instanceof LamplighterError) {
      throw new LamplighterError(err.code === ErrorCodes.NOT_FOUND ? ErrorCodes.MODULE_INVALID : err.code, `Cannot deploy function '${spec.name}': ${err.message}`, { cause: err, detail: err.detail });
    }
    throw err;
  }
}
