// What the admission pipeline asks of a function's circuit breakers; src/admission/breaker implements it.
import type { LamplighterError } from '../errors/index.js';
import type { InvocationRequest } from '../instance/index.js';

/** How one admitted request ended, as the breaker counts it. */
export interface CallOutcome {
  /** The status the function answered (its head), when it answered. */
  status?: number;
  /** Why it failed, when it did: a trap, a crash, a timeout, the platform's refusal. */
  error?: LamplighterError;
  /** From admission to the answer's head (or the failure), in ms. */
  durationMs: number;
}

/** A request let through: its outcome must be reported exactly once. */
export interface BreakerTicket {
  done(outcome: CallOutcome): void;
}

/** One function's breakers, partitioned by key. Answers from local memory only. */
export interface BreakerGate {
  /** Lets the request through (a ticket), or refuses it (LL_BREAKER_OPEN with retryAfter). */
  admit(request: InvocationRequest): BreakerTicket | LamplighterError;
  /** Stops timers (the function's revision is going). */
  close(): void;
}
