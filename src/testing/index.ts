// The in-process test harness: whole nodes started inside one test process.
export { startTestNode, wagiApp, wagiFixture, repoRoot } from './harness.js';
export type { TestNode } from './harness.js';
export { freePort, startNatsServer, waitForPort } from './nats-server.js';
export type { NatsServer, NatsServerOptions } from './nats-server.js';
export { startCutProxy } from './cut-proxy.js';
export type { CutProxy } from './cut-proxy.js';
