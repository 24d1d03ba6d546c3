// Lights instances of one component function: compiles its core modules once and shares them with workers.
import type { Instance, InstanceFactory, LogSink } from '../../instance/index.js';
import type { FunctionSpec } from '../../manifest/index.js';
import { hookBindings } from './bindings-hooks.js';
import { compileCoreModule } from './component-binary.js';
import { ComponentInstance, type ComponentRuntime } from './component-instance.js';
import { StandbyWorker } from './standby-worker.js';
import { DEFAULT_NODE_COMPONENT_WORKERS, WorkerBudget } from './worker-budget.js';
import { parseOutboundRules } from './outbound-policy.js';
import { handlerExportOf, validateComponentSpec, type PreparedComponent } from './prepare-component.js';

/** Default JS heap limit of a component worker, in MiB (the bindings, not the guest's memory). */
export const DEFAULT_WORKER_HEAP_MB = 128;

/**
 * Default most worker threads one instance runs: one a core, as the node's worker budget has by
 * default, so that an instance's capacity is what it can run when it has the node to itself. The
 * factory reports it as the instance's capacity, so the dispatcher holds requests past it and
 * the scaler lights another instance for them (while the budget has room) rather than queueing
 * them in this one.
 */
export const DEFAULT_MAX_WORKERS = DEFAULT_NODE_COMPONENT_WORKERS;

/** Options for {@link createComponentFactory}. */
export interface ComponentFactoryOptions {
  /** Where the handler's stdout, stderr and traps go. */
  log: LogSink;
  /** Told the thread time of each request's run, in seconds (the function CPU metric). @default not told */
  onRun?: (seconds: number) => void;
  /** JS heap limit of each worker thread, in MiB. @default DEFAULT_WORKER_HEAP_MB */
  workerHeapMb?: number;
  /** Most worker threads per instance, whatever limits.concurrency says. @default DEFAULT_MAX_WORKERS */
  maxWorkers?: number;
  /**
   * The node's component workers, shared by all its component functions (a Platform passes its
   * own). @default a budget of this factory's alone, of DEFAULT_NODE_COMPONENT_WORKERS
   */
  workerBudget?: WorkerBudget;
  /**
   * Keep one worker parked with its instance ready while the function has no instance (from when
   * the modules are compiled, and again each time an instance stops), so that a function at zero
   * lights without starting a thread, loading bindings or instantiating. Costs one idle thread
   * (tens of MiB) per component function.
   * @default true
   */
  standby?: boolean;
  /**
   * Core modules already compiled and capped at this spec's limits.memory (by
   * prepareComponentOffThread); without them the factory compiles the prepared files itself.
   * @default undefined
   */
  modules?: Record<string, WebAssembly.Module>;
  /** Directory of the function's shipped files, preopened read-only as `/` (wasi:filesystem). @default none */
  filesDir?: string;
}

/** An InstanceFactory for component functions. */
export interface ComponentFactory extends InstanceFactory {
  /** Resolves once the core modules are compiled; rejects with the compile error. */
  readonly compiled: Promise<void>;
  /** Resolves once a worker is parked and ready (at once when none is kept or none can be). */
  standbyReady(): Promise<void>;
  /** Host imports the bindings call directly (0 when the rewrite refused: see the function log). */
  readonly leanImports: number;
}

async function compileModules(prepared: PreparedComponent, memoryLimit: number): Promise<Record<string, WebAssembly.Module>> {
  const modules: Record<string, WebAssembly.Module> = {};
  for (const [name, bytes] of Object.entries(prepared.files)) {
    if (!name.endsWith('.wasm')) continue;
    modules[name] = await compileCoreModule(bytes, memoryLimit);
  }
  return modules;
}

/**
 * Creates the factory for a prepared component (fresh from prepareComponent or from a cache; the
 * spec-dependent checks run again here and throw ManifestError/ModuleError). Its core modules are
 * compiled once, with linear memory capped at `limits.memory`, and shared with every worker.
 */
export function createComponentFactory(prepared: PreparedComponent, spec: FunctionSpec, options: ComponentFactoryOptions): ComponentFactory {
  validateComponentSpec(prepared, spec);
  const modules = options.modules ? Promise.resolve(options.modules) : compileModules(prepared, spec.limits.memory);
  modules.catch(() => undefined);
  const entry = prepared.files[prepared.entry];
  const budget = options.workerBudget ?? new WorkerBudget(DEFAULT_NODE_COMPONENT_WORKERS);
  // Hooked once here, so that workers can reset the bindings' handle tables between requests.
  const bindings = entry ? hookBindings(Buffer.from(entry).toString('utf8')) : undefined;
  // A jco whose bindings no longer have the expected shape still works, at about twice the
  // bindings' cost a request: said once, where the function's owner looks.
  if (bindings?.leanRefused !== undefined) options.log('stderr', `component bindings: host imports keep jco's task bookkeeping (${bindings.leanRefused}); each request costs more\n`);
  const runtime: ComponentRuntime = {
    spec,
    log: options.log,
    modules,
    bindings: bindings?.source ?? '',
    handlerExport: handlerExportOf(prepared.exports) ?? 'incomingHandler',
    rules: parseOutboundRules(spec.allowedOutboundHosts),
    workerHeapMb: options.workerHeapMb ?? DEFAULT_WORKER_HEAP_MB,
    maxWorkers: Math.max(1, Math.min(spec.limits.concurrency, options.maxWorkers ?? DEFAULT_MAX_WORKERS)),
    budget,
    ...(options.onRun ? { onRun: options.onRun } : {}),
    ...(options.filesDir === undefined ? {} : { filesDir: options.filesDir }),
  };
  const live = new Set<ComponentInstance>();
  const standby = options.standby === false ? undefined : new StandbyWorker(runtime, modules);
  return {
    compiled: modules.then(() => undefined),
    capacity: runtime.maxWorkers,
    roomToLight: () => !budget.full,
    standbyReady: () => standby?.ready() ?? Promise.resolve(),
    leanImports: bindings?.leanImports ?? 0,
    create(id: string): Instance {
      const instance = new ComponentInstance(
        id,
        runtime,
        (i) => {
          live.delete(i);
          budget.leave(i);
        },
        standby,
      );
      live.add(instance);
      budget.join(instance);
      return instance;
    },
    async close(): Promise<void> {
      standby?.close();
      await Promise.allSettled([...live].map((i) => i.stop()));
      live.clear();
    },
  };
}
