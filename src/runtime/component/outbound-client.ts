// Performs a component's outbound HTTP requests on the caller's thread, streaming bodies both ways.
import http from 'node:http';
import https from 'node:https';
import { HOP_BY_HOP_HEADERS, type LogSink } from '../../instance/index.js';
import type { RequestTrace, TraceSpan } from '../../tracing/index.js';
import { isOutboundAllowed, type OutboundRule } from './outbound-policy.js';
import { STREAM_WINDOW, type FromWorker, type HttpErrorCode, type ToWorker, type WireHeaders } from './component-protocol.js';

type OutboundMessage = Extract<FromWorker, { oid: number }>;

interface Call {
  request: http.ClientRequest;
  response: http.IncomingMessage | undefined;
  /** Response bytes sent to the worker and not yet read by the handler. */
  outstanding: number;
  paused: boolean;
  settled: boolean;
  /** The call's span, when its request is traced. */
  span?: TraceSpan | undefined;
  timer: NodeJS.Timeout | undefined;
}

function errorCodeOf(err: unknown): HttpErrorCode {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return { tag: 'connection-refused' };
    case 'ECONNRESET':
    case 'EPIPE':
      return { tag: 'connection-terminated' };
    case 'ETIMEDOUT':
      return { tag: 'connection-timeout' };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { tag: 'DNS-error', val: { rcode: code, infoCode: undefined } };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { tag: 'destination-unavailable' };
    default:
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) return { tag: 'TLS-certificate-error' };
      return { tag: 'internal-error', val: err instanceof Error ? err.message : String(err) };
  }
}

function toNodeHeaders(headers: WireHeaders): http.OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(key)) continue;
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else out[key] = Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

function pairsOf(raw: string[]): WireHeaders {
  const pairs: WireHeaders = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i] as string, raw[i + 1] as string]);
  return pairs;
}

/** Options for {@link OutboundClient}. */
export interface OutboundClientOptions {
  /** Parsed allow-list, checked again here before any connection is made. */
  rules: readonly OutboundRule[];
  /** Sends a message to the worker. */
  send: (message: ToWorker, transfer?: ArrayBuffer[]) => void;
  /** The function's log. */
  log: LogSink;
  /** The trace and run span of the request the worker runs now, when it is traced. @default never traced */
  traceOfCall?: () => { trace: RequestTrace; run: TraceSpan } | undefined;
}

/** Runs the outbound requests of one worker. */
export class OutboundClient {
  private readonly calls = new Map<number, Call>();

  constructor(private readonly options: OutboundClientOptions) {}

  /** Handles a fetch-related message from the worker. */
  onMessage(message: OutboundMessage): void {
    switch (message.t) {
      case 'fetch':
        this.start(message);
        break;
      case 'fetch-body': {
        const call = this.calls.get(message.oid);
        if (!call) break;
        const bytes = message.chunk.byteLength;
        call.request.write(Buffer.from(message.chunk.buffer, message.chunk.byteOffset, bytes), () => {
          this.options.send({ t: 'fetch-credit', oid: message.oid, bytes });
        });
        break;
      }
      case 'fetch-body-end':
        this.calls.get(message.oid)?.request.end();
        break;
      case 'fetch-ack': {
        const call = this.calls.get(message.oid);
        if (!call) break;
        call.outstanding -= message.bytes;
        if (call.paused && call.outstanding <= STREAM_WINDOW / 2) {
          call.paused = false;
          call.response?.resume();
        }
        break;
      }
      case 'fetch-cancel':
        this.drop(message.oid);
        break;
    }
  }

  /** Stops every outbound request (the request ended or the worker went away). */
  cancelAll(): void {
    for (const oid of [...this.calls.keys()]) this.drop(oid);
  }

  private drop(oid: number): void {
    const call = this.calls.get(oid);
    if (!call) return;
    this.calls.delete(oid);
    call.settled = true;
    clearTimeout(call.timer);
    call.request.destroy();
    call.span?.end();
  }

  private fail(oid: number, code: HttpErrorCode): void {
    const call = this.calls.get(oid);
    if (!call || call.settled) return;
    call.settled = true;
    this.calls.delete(oid);
    clearTimeout(call.timer);
    call.request.destroy();
    call.span?.fail(code.tag);
    call.span?.end();
    this.options.send({ t: 'fetch-error', oid, code });
  }

  private start(message: Extract<FromWorker, { t: 'fetch' }>): void {
    const { oid } = message;
    let url: URL;
    try {
      url = new URL(message.url);
    } catch {
      this.options.send({ t: 'fetch-error', oid, code: { tag: 'HTTP-request-URI-invalid' } });
      return;
    }
    if (!isOutboundAllowed(this.options.rules, url)) {
      this.options.send({ t: 'fetch-error', oid, code: { tag: 'HTTP-request-denied' } });
      return;
    }
    const transport = url.protocol === 'https:' ? https : http;
    // Traced: the call is a client span under the run, and the server it calls continues the trace
    // (unless the handler set a traceparent of its own).
    const traced = this.options.traceOfCall?.();
    const span = traced?.trace.startCall(message.method, url, { parent: traced.run, runtime: 'component' });
    const headers = toNodeHeaders(message.headers);
    if (span && headers.traceparent === undefined) headers.traceparent = span.traceparent;
    const request = transport.request(url, { method: message.method, headers });
    const call: Call = { request, response: undefined, outstanding: 0, paused: false, settled: false, timer: undefined, span };
    this.calls.set(oid, call);
    const firstByteMs = Math.min(message.timeouts.connectMs ?? Infinity, message.timeouts.firstByteMs ?? Infinity);
    if (Number.isFinite(firstByteMs)) {
      call.timer = setTimeout(() => this.fail(oid, { tag: 'HTTP-response-timeout' }), firstByteMs);
    }
    request.on('error', (err) => this.fail(oid, errorCodeOf(err)));
    request.on('response', (response) => {
      clearTimeout(call.timer);
      if (call.settled) {
        response.destroy();
        return;
      }
      call.response = response;
      call.span?.setStatus(response.statusCode ?? 502);
      this.options.send({ t: 'fetch-head', oid, status: response.statusCode ?? 502, headers: pairsOf(response.rawHeaders) });
      response.on('data', (data: Buffer) => {
        if (call.settled) return;
        const chunk = new Uint8Array(data.byteLength);
        chunk.set(data);
        call.outstanding += chunk.byteLength;
        this.options.send({ t: 'fetch-chunk', oid, chunk }, [chunk.buffer]);
        if (call.outstanding > STREAM_WINDOW && !call.paused) {
          call.paused = true;
          response.pause();
        }
      });
      response.on('end', () => {
        if (call.settled) return;
        call.settled = true;
        this.calls.delete(oid);
        call.span?.end();
        this.options.send({ t: 'fetch-end', oid });
      });
      response.on('error', (err) => this.fail(oid, errorCodeOf(err)));
    });
  }
}
