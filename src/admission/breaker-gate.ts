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

/** A breaker refusing requests (open) or letting probes through (half-open), as `ls` shows it. */
export interface OpenBreakerStatus {
  key: string;
  state: 'open' | 'half_open';
  /** Seconds until it lets probes through; 0 when half-open. */
  retryAfter: number;
}

/** One function's breakers as `ls` and the admin API show them: how many are open, and which. */
export interface BreakerStatus {
  /** The partition as the manifest wrote it: "none", "client", "path" or "header:NAME". */
  partition: string;
  /** Open and half-open breakers now. */
  open: number;
  /** The first of them, soonest to probe first; at most the limit asked for. */
  keys: OpenBreakerStatus[];
}

/** One function's breakers, partitioned by key. Answers from local memory only. */
export interface BreakerGate {
  /** Lets the request through (a ticket), or refuses it (LL_BREAKER_OPEN with retryAfter). */
  admit(request: InvocationRequest): BreakerTicket | LamplighterError;
  /** How many breakers are open now, and the first `limit` of them. */
  status(limit: number): BreakerStatus;
  /** Stops timers (the function's revision is going). */
  close(): void;
}
