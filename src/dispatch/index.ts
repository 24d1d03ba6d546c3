// The dispatcher: per-function instances, held requests, lighting on demand, and peers.
export { Dispatcher, overPendingCap } from './dispatcher.js';
export type { DispatcherInspection, DispatcherOptions, InstanceInspection, ScaleDecisionInspection } from './dispatcher.js';
export type { ForwardedResponse, FunctionPeers, PeerChoice } from './function-peers.js';
