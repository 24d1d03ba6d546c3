// The dispatcher: per-function instance groups, held requests, lighting on demand, and peers.
export { FunctionGroup } from './function-group.js';
export type { DispatchResult, FunctionGroupOptions } from './function-group.js';
export type { ForwardedResponse, FunctionPeers, PeerChoice } from './function-peers.js';
