// Component runtime: WASI 0.2 components exporting wasi:http/incoming-handler, run in worker threads.
export { prepareComponent, validateComponentSpec, parseWorld, unsupportedImports, handlerExportOf } from './prepare-component.js';
export type { PreparedComponent, ComponentWorld } from './prepare-component.js';
export { createComponentFactory, DEFAULT_WORKER_HEAP_MB, DEFAULT_MAX_WORKERS } from './component-factory.js';
export type { ComponentFactory, ComponentFactoryOptions } from './component-factory.js';
export { prepareComponentOffThread } from './prepare-off-thread.js';
export type { PrepareOffThreadOptions, CompiledComponent } from './prepare-off-thread.js';
export { ComponentCache, componentCacheDir } from './component-cache.js';
export { ComponentInstance, STOP_GRACE_MS } from './component-instance.js';
export type { WorkerStats } from './component-protocol.js';
export { buildComponent, buildRecipe } from './build-component.js';
export type { BuildComponentOptions, BuiltComponent } from './build-component.js';
export { parseOutboundRules, isOutboundAllowed } from './outbound-policy.js';
export type { OutboundRule } from './outbound-policy.js';
export { HOST_INTERFACES, HANDLER_INTERFACE } from './host-interfaces.js';
export { WorkerBudget, DEFAULT_NODE_COMPONENT_WORKERS } from './worker-budget.js';
