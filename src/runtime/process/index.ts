// The process runtime: any program serving HTTP on $PORT, supervised and proxied as an Instance.
//
// What a process function's program can count on:
// - Environment: `PORT` (a free port on 127.0.0.1 chosen by Lamplighter; listen on 127.0.0.1:$PORT),
//   the manifest's `env`, and `PATH` and `HOME` copied from the host so interpreters (node,
//   python3, sh) are found. Nothing else of the host's environment is passed on
//   (`inheritEnv` changes the copied names; the manifest's `env` overrides them; `PORT` wins).
// - Working directory: the app directory, or `cwd` from the manifest resolved against it.
// - Readiness: before its first request, GET `ready` (the manifest path) until it answers 2xx,
//   or, without one, until a TCP connect succeeds; bounded by `startup_timeout`.
// - Its own process group: on stop, in-flight requests get `drain_timeout` to finish, then the
//   whole group gets SIGTERM and, after `killGraceMs`, SIGKILL; wrappers such as `sh -c` take
//   their children with them. stdout and stderr go to the log sink line by line.
// - Its own cgroup, where cgroup v2 is writable (see child-cgroup.ts): descendants that left the
//   group get the same SIGTERM and grace, then the cgroup is killed. Elsewhere they are not
//   stopped, and the factory logs why once.
// - It dies with Lamplighter: a watchdog process (group-watchdog.ts) kills every live group and
//   cgroup when Lamplighter's end of its pipe closes, even after `kill -9`.
//
// What the dispatcher sees:
// - `factory.create(id)` returns at once. After a failure, the new instance's process starts
//   only once the restart backoff has passed (100 ms doubling to 10 s, see `restartDelayMs`).
// - An instance that crashes resolves `closed` with `{ reason: 'failed', message }` (exit code or
//   signal and the last stderr lines); one that never becomes ready rejects `ready` with
//   FUNCTION_FAILED carrying the same kind of message.
// - After 5 failures within 30 s without a successful ready, `factory.failure` is set and every
//   new instance fails at once with FUNCTION_FAILED and that message (HTTP 503), without
//   starting a process. A ready instance, `factory.reset()`, or `failureRetryMs` passing clears it.
// - Requests go to the child over keep-alive HTTP/1.1 connections (`UpstreamPool`, one per
//   instance, as many as requests were in flight at once, idle ones closed a second before the
//   child would close them). An answer that does not parse is
//   BAD_HANDLER_RESPONSE (502) naming the fault; a connection that fails before any answer is
//   UPSTREAM_UNAVAILABLE, except that an idempotent request (body up to 64 KiB) is sent once more
//   on a new connection first — the child may have closed a kept-alive one as it went out.
// - WebSocket and other upgrades: `instance.upgrade(request, socket, head)` from the gateway's
//   upgrade handler sends the request on and, only if the child answers 101, pipes the raw
//   connections both ways; any other answer is relayed and the connection ends.
// - `installExitHook()` (call once from the CLI) kills every live child group when Lamplighter
//   exits or receives SIGINT/SIGTERM, at once rather than when the watchdog notices.
export { createProcessFactory, ProcessFactory, DEFAULT_INHERITED_ENV } from './process-factory.js';
export type { ProcessFactoryOptions } from './process-factory.js';
export type { ProcessInstance } from './process-instance.js';
export type { FunctionFailure, RestartPolicyOptions } from './restart-policy.js';
export { ManualClock, systemClock } from './clock.js';
export type { Clock, ClockTimer } from './clock.js';
export { installExitHook, killAllChildGroups, liveChildGroups } from './child-registry.js';
export type { ExitHookOptions } from './child-registry.js';
export { proxyRequest } from './http-proxy.js';
export type { ProxyRequestOptions } from './http-proxy.js';
export { MalformedResponseError, MAX_HEAD_BYTES, ResponseParser } from './response-parser.js';
export type { BodyFraming, ResponseEvents, ResponseHead } from './response-parser.js';
export { UpstreamPool } from './upstream-pool.js';
export { pipeUpgrade } from './upgrade-proxy.js';
export type { PipeUpgradeOptions, UpgradeExchange } from './upgrade-proxy.js';
export type { UpstreamPoolOptions } from './upstream-pool.js';
export {
  processSpawnChannel,
  processReadyChannel,
  processExitChannel,
  processCrashLoopChannel,
} from './diagnostics.js';
