// Turns a function spec and its artifact into an InstanceFactory, per runtime; every check runs at deploy.
import path from 'node:path';
import { LamplighterError, ModuleError } from '../errors/index.js';
import type { InstanceFactory, LogSink } from '../instance/index.js';
import type { FunctionSpec } from '../manifest/index.js';
import { createComponentFactory, prepareComponent, type PreparedComponent } from '../runtime/component/index.js';
import { createProcessFactory } from '../runtime/process/index.js';
import type { ArtifactStore } from '../store/index.js';
import { compileWagiModule, createWagiFactory, type SandboxPool } from '../runtime/wasm/index.js';

/** What building a factory may use. */
export interface RuntimeContext {
  pool: SandboxPool;
  /** Reads an artifact named by the manifest (`source`). */
  artifact(name: string): Promise<Uint8Array>;
  /** The sha256 digest of that artifact, known from the deploy without reading it. */
  artifactDigest(name: string): string;
  /** Where deploy-time work (transpiled components) is cached by digest. */
  store: ArtifactStore;
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
      case 'component': {
        const source = spec.source as string;
        const prepared = await preparedComponent(ctx.artifactDigest(source), () => ctx.artifact(source), spec, ctx.store);
        const factory = createComponentFactory(prepared, spec, { log: ctx.log });
        await factory.compiled;
        return factory;
      }
    }
  } catch (err) {
    if (err instanceof LamplighterError) {
      throw new LamplighterError(err.code, `Cannot deploy function '${spec.name}': ${err.message}`, { cause: err, detail: err.detail });
    }
    throw err;
  }
}

/** Bumped when the shape of a cached transpile changes, so old entries are not read. */
const COMPONENT_CACHE_VERSION = 1;

/**
 * Checks and transpiles a component once per content: the result is cached in the store under the
 * component's digest, so a redeploy or a restart of the same bytes skips the transpile.
 */
async function preparedComponent(digest: string, read: () => Promise<Uint8Array>, spec: FunctionSpec, store: ArtifactStore): Promise<PreparedComponent> {
  // The key is the digest the deploy already computed: a cache hit reads and hashes nothing more.
  const key = `component-v${COMPONENT_CACHE_VERSION}-${digest}`;
  const cached = await store.cacheGet(key);
  if (cached) {
    try {
      const json = JSON.parse(cached.toString('utf8')) as { files: Record<string, string>; entry: string; imports: string[]; exports: string[] };
      const files: Record<string, Uint8Array> = {};
      for (const [name, base64] of Object.entries(json.files)) files[name] = Buffer.from(base64, 'base64');
      const prepared: PreparedComponent = { files, entry: json.entry, imports: json.imports, exports: json.exports };
      return prepared;
    } catch {
      // A damaged cache entry is rebuilt below.
    }
  }
  const prepared = await prepareComponent(await read(), spec);
  const files: Record<string, string> = {};
  for (const [name, data] of Object.entries(prepared.files)) files[name] = Buffer.from(data).toString('base64');
  await store.cachePut(key, Buffer.from(JSON.stringify({ files, entry: prepared.entry, imports: prepared.imports, exports: prepared.exports })));
  return prepared;
}
