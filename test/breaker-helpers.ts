// Requests, manifests and a clock for the breaker tests.
import { Readable } from 'node:stream';
import type { IncomingHttpHeaders } from 'node:http';
import { type BreakerTicket } from '../src/admission/breaker-gate.js';
import { ErrorCodes, LamplighterError, type ErrorCode } from '../src/errors/index.js';
import type { InvocationRequest } from '../src/instance/index.js';
import { parseManifest, type FunctionSpec } from '../src/manifest/index.js';

/** A function `f` whose manifest has `[function.breaker]` with the lines given. */
export function breakerSpec(lines: string): FunctionSpec {
  return parseManifest(`name = "app"\n[[function]]\nname = "f"\nsource = "f.wasm"\nroutes = ["/..."]\n[function.breaker]\n${lines}\n`).functions[0]!;
}

const body = Readable.from([]);
const signal = new AbortController().signal;

/** A request as the gateway would hand it on; only what partition keys read varies. */
export function request(options: { headers?: IncomingHttpHeaders; url?: string; remoteAddress?: string; forwardedBy?: string } = {}): InvocationRequest {
  return {
    id: 'r',
    method: 'GET',
    url: options.url ?? '/',
    headers: options.headers ?? {},
    body,
    remoteAddress: options.remoteAddress ?? '127.0.0.1',
    host: 'localhost',
    serverPort: 8080,
    route: { pattern: '/...', scriptName: '', pathInfo: options.url ?? '/' },
    signal,
    ...(options.forwardedBy === undefined ? {} : { forwardedBy: options.forwardedBy }),
  };
}

/** A request of tenant `key` (header x-tenant). */
export function tenant(key: string): InvocationRequest {
  return request({ headers: { 'x-tenant': key } });
}

/** Time under the test's control, in ms. */
export class TestClock {
  now = 1_000_000;
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** Narrows an admit() answer to a ticket, failing the test on a refusal. */
export function ticket(answer: BreakerTicket | LamplighterError): BreakerTicket {
  if (answer instanceof LamplighterError) throw new Error(`expected the request to be let through, got ${answer.code}: ${answer.message}`);
  return answer;
}

/** Narrows an admit() answer to a refusal, failing the test on a ticket. */
export function refusal(answer: BreakerTicket | LamplighterError): LamplighterError {
  if (!(answer instanceof LamplighterError)) throw new Error('expected the request to be refused, it was let through');
  return answer;
}

/** The platform's error with `code`, as a ticket reports it. */
export function failure(code: ErrorCode): LamplighterError {
  return new LamplighterError(code, `test ${code}`);
}

export const FAIL = { status: 500, durationMs: 1 } as const;
export const OK = { status: 200, durationMs: 1 } as const;
export const TIMEOUT = { error: failure(ErrorCodes.TIMEOUT), durationMs: 1 };
