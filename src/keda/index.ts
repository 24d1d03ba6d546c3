// KEDA external scaler: serves the scaler's per-function demand to KEDA over gRPC.
export type { DemandSource, FunctionDemand } from './demand-source.js';
export { startKedaServer, kedaMetricName, KedaServerDefaults } from './keda-server.js';
export type { KedaServer, KedaServerOptions } from './keda-server.js';
export { externalScalerProtoPath } from './external-scaler-proto.js';
