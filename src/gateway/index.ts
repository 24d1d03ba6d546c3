// The gateway: route table, the HTTP server, the in-process entry, and the mapping of errors to responses.
export { Gateway } from './gateway.js';
export type { GatewayHandleRequest, GatewayHandleResponse, GatewayListenOptions, GatewayOptions } from './gateway.js';
export { RouteTable } from './route-table.js';
export type { RouteEntry, RouteMatch } from './route-table.js';
export { errorResponse } from './error-response.js';
export type { ErrorResponse } from './error-response.js';
