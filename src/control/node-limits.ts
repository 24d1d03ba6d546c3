// A function's limits as this node serves them: those its manifest leaves unset follow the node's
// defaults, read at each use, so a reload that changes a default reaches every such function at
// once with no rebuild. Consumers read `spec.limits.<field>` when a request arrives (the gateway's
// deadline, the pending cap, the body and response caps, the cold-start wait).
import type { LimitDefaults } from '../config/index.js';
import type { FunctionSpec } from '../manifest/index.js';

/** `spec` with each defaulted limit reading from `defaults` (a live object a reload updates). */
export function withNodeLimits(spec: FunctionSpec, defaults: Readonly<LimitDefaults>): FunctionSpec {
  if (!spec.defaultedLimits || spec.defaultedLimits.length === 0) return spec;
  const limits = { ...spec.limits };
  for (const limit of spec.defaultedLimits) {
    Object.defineProperty(limits, limit, { get: () => defaults[limit], enumerable: true, configurable: false });
  }
  return { ...spec, limits };
}
