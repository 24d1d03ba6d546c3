// The in-process test harness: whole nodes started inside one test process.
export { startTestNode, wagiApp, wagiFixture, repoRoot } from './harness.js';
export type { TestNode } from './harness.js';
export { freePort, startNatsServer, waitForPort } from './nats-server.js';
export type { NatsServer, NatsServerOptions } from './nats-server.js';
export { startCutProxy } from './cut-proxy.js';
export type { CutProxy } from './cut-proxy.js';
export type { NatsServerTlsOptions } from './nats-server.js';
export { startNatsCluster } from './nats-cluster.js';
export type { NatsCluster, NatsClusterOptions } from './nats-cluster.js';
export { makeTestCertificates } from './certs.js';
export type { TestCertificates } from './certs.js';
export { makeTestOperator } from './nats-jwt.js';
export type { TestOperator } from './nats-jwt.js';
export { startTestCluster, TEST_TIMING } from './cluster-harness.js';
export type { ChildNode, TestCluster, TestClusterOptions } from './cluster-harness.js';
export { makeTestServerCertificate } from './certs.js';
export type { TestServerCertificateOptions } from './certs.js';
