// Admission step: asks the function's breakers first, and tells them how each admitted request ended.
import { performance } from 'node:perf_hooks';
import { ErrorCodes, LamplighterError, toLamplighterError } from '../errors/index.js';
import type { DispatchResult, RoutedRequest } from '../instance/index.js';
import type { BreakerGate, BreakerTicket } from './breaker-gate.js';
import type { AdmissionStep } from './request-handler.js';

/**
 * Lets a request through only with a ticket from `gate`; a refusal (LL_BREAKER_OPEN) is thrown as
 * the gate made it. The ticket is done exactly once: with the status at the answer's head, with
 * the error the request failed with, or with LL_TIMEOUT the moment its deadline aborts it (not
 * when whatever ran it lets go, which may be later), or with nothing when the client leaves first.
 */
export function breakerStep(gate: BreakerGate): AdmissionStep {
  return (next) => (request) => {
    const ticket = gate.admit(request);
    if (ticket instanceof LamplighterError) return Promise.reject(ticket);
    const outcome = new Outcome(ticket, request);
    let pending: Promise<DispatchResult>;
    try {
      pending = next(request);
    } catch (err) {
      pending = Promise.reject(err);
    }
    return pending.then(outcome.answered, outcome.failed);
  };
}

/** One admitted request's report to its breaker, made once. */
class Outcome {
  readonly #ticket: BreakerTicket;
  readonly #request: RoutedRequest;
  readonly #start = performance.now();
  readonly #stopListening: () => void;
  #done = false;

  constructor(ticket: BreakerTicket, request: RoutedRequest) {
    this.#ticket = ticket;
    this.#request = request;
    this.#stopListening = request.onAbort(this.#aborted);
  }

  readonly answered = (result: DispatchResult): DispatchResult => {
    this.#report(result.response.status, undefined);
    return result;
  };

  readonly failed = (err: unknown): never => {
    this.#report(undefined, toLamplighterError(err));
    throw err;
  };

  /**
   * The deadline's abort is the request's end as the breaker sees it (LL_TIMEOUT). A client that
   * leaves before the answer's head says nothing of the function's health: whatever the run then
   * ends with (a proxy's aborted upstream call, a cancelled hold) is reported as neither status nor
   * error, which the breaker ignores. Otherwise a load balancer closing idle connections, or a
   * load generator stopping, would open breakers.
   */
  readonly #aborted = (): void => {
    const reason = this.#request.abortReason;
    this.#report(undefined, reason?.code === ErrorCodes.TIMEOUT ? reason : undefined);
  };

  #report(status: number | undefined, error: LamplighterError | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#stopListening();
    this.#ticket.done({ status, error, durationMs: performance.now() - this.#start });
  }
}
