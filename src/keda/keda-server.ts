// gRPC server speaking KEDA's external-scaler protocol, answering from the scaler's per-function demand.
import * as grpc from '@grpc/grpc-js';
import { PlatformDefaults } from '../config/index.js';
import type { DemandSource, FunctionDemand } from './demand-source.js';
import { loadExternalScalerService } from './external-scaler-proto.js';

/** Defaults of {@link KedaServerOptions}, quoted by docs and CLI help. */
export const KedaServerDefaults = {
  /** Bind address; loopback unless told otherwise. */
  host: PlatformDefaults.host,
  /** StreamIsActive re-sends the current state this often even when nothing changed. */
  streamIntervalMs: 5_000,
  /** close() waits this long for calls in flight before cutting connections. */
  closeTimeoutMs: 5_000,
} as const;

/** Options for {@link startKedaServer}. */
export interface KedaServerOptions {
  /** TCP port to listen on; 0 picks a free one (read it back from {@link KedaServer.port}). */
  port: number;
  /** Address to bind; use `0.0.0.0` or `::` so KEDA can reach it from another pod. @default KedaServerDefaults.host ('127.0.0.1') */
  host?: string;
  /** How often StreamIsActive re-sends the current state without a change. @default KedaServerDefaults.streamIntervalMs (5000) */
  streamIntervalMs?: number;
  /** How long close() waits for calls in flight before cutting connections. @default KedaServerDefaults.closeTimeoutMs (5000) */
  closeTimeoutMs?: number;
}

/** A running KEDA external-scaler server. */
export interface KedaServer {
  /** The port actually bound (differs from the requested one when that was 0). */
  readonly port: number;
  /** Ends open StreamIsActive streams, stops the server and resolves once it has shut down. */
  close(): Promise<void>;
}

/** The metric name Lamplighter reports to KEDA for a function: `lamplighter-<function>-<metric>`. */
export function kedaMetricName(functionName: string, metric: FunctionDemand['metric']): string {
  return `lamplighter-${functionName}-${metric}`;
}

/** ScaledObjectRef as decoded by proto-loader (defaults filled in). */
interface _ScaledObjectRef {
  name: string;
  namespace: string;
  scalerMetadata: Record<string, string>;
}

/** IsActiveResponse as sent. */
interface _IsActiveResponse {
  result: boolean;
}

/** GetMetricSpecResponse as sent. */
interface _GetMetricSpecResponse {
  metricSpecs: Array<{ metricName: string; targetSize: number; targetSizeFloat: number }>;
}

/** GetMetricsRequest as decoded (an unset message field decodes as null). */
interface _GetMetricsRequest {
  scaledObjectRef: _ScaledObjectRef | null;
  metricName: string;
}

/** GetMetricsResponse as sent. */
interface _GetMetricsResponse {
  metricValues: Array<{ metricName: string; metricValue: number; metricValueFloat: number }>;
}

/** A failure that becomes a gRPC status with its own code. */
class _CallError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/** The status sent for anything a handler throws. */
function _toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof _CallError) return { code: err.code, details: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: grpc.status.INTERNAL, details: `Lamplighter's scaler failed to answer: ${message}` };
}

/** `ScaledObject 'namespace/name'`, for messages. */
function _describe(ref: _ScaledObjectRef): string {
  return `ScaledObject '${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}'`;
}

/** The function a ScaledObjectRef names: `scalerMetadata.function` when set, else the object's name. */
function _functionName(ref: _ScaledObjectRef): string {
  const override = ref.scalerMetadata?.['function'];
  if (override !== undefined && override !== '') return override;
  if (ref.name) return ref.name;
  throw new _CallError(
    grpc.status.INVALID_ARGUMENT,
    'Cannot tell which Lamplighter function to scale: the ScaledObjectRef has no name and no scalerMetadata.function',
  );
}

/** Looks up the function a ref names; unknown functions become NOT_FOUND. */
function _resolve(source: DemandSource, ref: _ScaledObjectRef | null): { name: string; demand: FunctionDemand } {
  if (!ref) {
    throw new _CallError(grpc.status.INVALID_ARGUMENT, 'Cannot read metrics: the request has no scaledObjectRef');
  }
  const name = _functionName(ref);
  const demand = source.demand(name);
  if (!demand) {
    const how = ref.scalerMetadata?.['function'] ? `scalerMetadata.function of ${_describe(ref)}` : `the name of ${_describe(ref)}`;
    throw new _CallError(
      grpc.status.NOT_FOUND,
      `Lamplighter has no function '${name}' (taken from ${how}); deploy it, or set the trigger's metadata 'function' to a deployed function's name`,
    );
  }
  return { name, demand };
}

/** Wraps a synchronous handler as a grpc-js unary handler that turns throws into statuses. */
function _unary<Req, Res>(fn: (request: Req) => Res): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let response: Res;
    try {
      response = fn(call.request);
    } catch (err) {
      callback(_toStatus(err));
      return;
    }
    callback(null, response);
  };
}

/** `host:port`, bracketing IPv6 literals. */
function _address(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Starts a plaintext gRPC server for KEDA's `externalscaler.ExternalScaler`, answering from `source`; resolves once listening. */
export async function startKedaServer(source: DemandSource, options: KedaServerOptions): Promise<KedaServer> {
  const host = options.host ?? KedaServerDefaults.host;
  const streamIntervalMs = options.streamIntervalMs ?? KedaServerDefaults.streamIntervalMs;
  const closeTimeoutMs = options.closeTimeoutMs ?? KedaServerDefaults.closeTimeoutMs;
  const service = loadExternalScalerService();

  /** Ends each open StreamIsActive call; emptied as streams finish. */
  const openStreams = new Set<() => void>();

  const isActive = _unary<_ScaledObjectRef, _IsActiveResponse>((ref) => ({ result: _resolve(source, ref).demand.active }));

  const getMetricSpec = _unary<_ScaledObjectRef, _GetMetricSpecResponse>((ref) => {
    const { name, demand } = _resolve(source, ref);
    return {
      metricSpecs: [
        { metricName: kedaMetricName(name, demand.metric), targetSize: Math.ceil(demand.target), targetSizeFloat: demand.target },
      ],
    };
  });

  const getMetrics = _unary<_GetMetricsRequest, _GetMetricsResponse>((request) => {
    const { name, demand } = _resolve(source, request.scaledObjectRef);
    const metricName = kedaMetricName(name, demand.metric);
    // The HPA lower-cases metric names on their way back to KEDA, so compare without case.
    if (request.metricName && request.metricName.toLowerCase() !== metricName.toLowerCase()) {
      throw new _CallError(
        grpc.status.INVALID_ARGUMENT,
        `Function '${name}' is scaled on metric '${metricName}', got a request for '${request.metricName}'`,
      );
    }
    return { metricValues: [{ metricName, metricValue: Math.ceil(demand.value), metricValueFloat: demand.value }] };
  });

  const streamIsActive: grpc.handleServerStreamingCall<_ScaledObjectRef, _IsActiveResponse> = (call) => {
    let name: string;
    let last: boolean;
    try {
      const resolved = _resolve(source, call.request);
      name = resolved.name;
      last = resolved.demand.active;
    } catch (err) {
      call.emit('error', _toStatus(err));
      return;
    }

    let finished = false;
    const send = (active: boolean): void => {
      last = active;
      if (!finished && !call.writableEnded && !call.destroyed) call.write({ result: active });
    };
    const unsubscribe = source.onActivityChange((functionName, active) => {
      if (functionName === name && active !== last) send(active);
    });
    const timer = setInterval(() => {
      let active: boolean;
      try {
        // A function undeployed mid-stream reports inactive; the stream resumes if it comes back.
        active = source.demand(name)?.active ?? false;
      } catch (err) {
        cleanup();
        call.emit('error', _toStatus(err));
        return;
      }
      send(active);
    }, streamIntervalMs);
    timer.unref();

    const cleanup = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      openStreams.delete(end);
      unsubscribe();
    };
    function end(): void {
      cleanup();
      if (!call.writableEnded && !call.destroyed) call.end();
    }
    openStreams.add(end);
    call.on('cancelled', cleanup);
    call.on('finish', cleanup);
    call.on('close', cleanup);
    call.on('error', cleanup);

    send(last);
  };

  const server = new grpc.Server();
  server.addService(service, {
    IsActive: isActive,
    StreamIsActive: streamIsActive,
    GetMetricSpec: getMetricSpec,
    GetMetrics: getMetrics,
  } satisfies grpc.UntypedServiceImplementation);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(_address(host, options.port), grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) {
        server.forceShutdown();
        reject(new Error(`Cannot start the KEDA server on ${_address(host, options.port)}: ${err.message}`, { cause: err }));
      } else {
        resolve(bound);
      }
    });
  });

  let closing: Promise<void> | undefined;
  return {
    port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        for (const end of [...openStreams]) end();
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, closeTimeoutMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return closing;
    },
  };
}
