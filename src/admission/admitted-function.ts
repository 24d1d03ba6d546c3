// One function as the gateway sees it: its admission steps composed, in order, around its dispatcher.
import type { Duplex } from 'node:stream';
import type { DispatchResult, GatewayTarget, InvocationRequest, RoutedRequest } from '../instance/index.js';
import type { FunctionSpec } from '../manifest/index.js';
import type { BreakerGate, BreakerStatus } from './breaker-gate.js';
import { breakerStep } from './breaker-step.js';
import { deadlineStep } from './deadline-step.js';
import { checkPending, pendingCapStep, type HeldRequests } from './pending-cap-step.js';
import { compose, type AdmissionStep, type RequestHandler } from './request-handler.js';

/** What admission wraps: a function's dispatcher. */
export interface AdmissionTarget extends GatewayTarget, HeldRequests {}

/** Options for {@link admissionPipeline} and {@link AdmittedFunction}. */
export interface AdmissionOptions {
  /** The function's breakers; without one the breaker step is left out entirely. @default undefined */
  breaker?: BreakerGate;
}

/**
 * The steps a request passes before dispatch, outermost first: deadline → breaker → pending cap →
 * dispatch. The deadline is outermost so that it bounds everything after it and the breaker sees a
 * request that ran out of time as LL_TIMEOUT; the breaker comes before the pending cap so that an
 * open breaker refuses without the request counting against the function's capacity.
 */
export function admissionPipeline(target: AdmissionTarget, options: AdmissionOptions = {}): RequestHandler {
  const spec = target.spec;
  const steps: AdmissionStep[] = [deadlineStep(spec)];
  if (options.breaker) steps.push(breakerStep(options.breaker));
  steps.push(pendingCapStep(spec, target));
  return compose(steps, (request) => target.dispatch(request));
}

/**
 * A function behind its admission pipeline: what routes lead to. Upgrades (WebSockets) pass the
 * pending cap only; their deadline is the gateway's handshake timer, and they are not counted by
 * breakers.
 */
export class AdmittedFunction implements GatewayTarget {
  readonly spec: FunctionSpec;
  readonly #target: AdmissionTarget;
  readonly #handler: RequestHandler;
  readonly #breaker: BreakerGate | undefined;

  constructor(target: AdmissionTarget, options: AdmissionOptions = {}) {
    this.spec = target.spec;
    this.#target = target;
    this.#breaker = options.breaker;
    this.#handler = admissionPipeline(target, options);
  }

  /** Runs the request through admission, then dispatch. */
  dispatch(request: RoutedRequest): Promise<DispatchResult> {
    return this.#handler(request);
  }

  upgrade(request: InvocationRequest, socket: Duplex, head: Buffer): Promise<{ coldStart: boolean; status: number }> {
    try {
      checkPending(this.spec, this.#target, request);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#target.upgrade(request, socket, head);
  }

  /** The function's open breakers, at most `limit` keys; undefined when it has no breakers. */
  breakerStatus(limit: number): BreakerStatus | undefined {
    return this.#breaker?.status(limit);
  }

  /** Stops the breakers' timers (the revision is going); the dispatcher is stopped by its owner. */
  close(): void {
    this.#breaker?.close();
  }
}
