// What a breaker makes of a call's outcome: a success, a failure, or nothing it should count.
import { ErrorCodes, type ErrorCode } from '../../errors/index.js';
import type { CallOutcome } from '../breaker-gate.js';

/** How an outcome counts: not at all, as a success, or as a failure. */
export const enum Verdict {
  Ignored = 0,
  Success = 1,
  Failure = 2,
}

// Refusals by the platform before the function ran say nothing about the function's health.
const NOT_COUNTED: ReadonlySet<ErrorCode> = new Set<ErrorCode>([ErrorCodes.OVER_CAPACITY, ErrorCodes.BREAKER_OPEN, ErrorCodes.SHUTTING_DOWN]);

/**
 * Failures: 5xx answers, traps, crashes, timeouts (any error the platform maps to 5xx), and calls
 * at least `slowCallMs` long. Successes: every other answer, 4xx included. Ignored: the
 * platform's own refusals, and outcomes with neither status nor error (the client went away).
 */
export function verdictOf(outcome: CallOutcome, slowCallMs: number | undefined): Verdict {
  const error = outcome.error;
  let failed: boolean;
  if (error !== undefined) {
    if (NOT_COUNTED.has(error.code)) return Verdict.Ignored;
    failed = error.status >= 500;
  } else if (outcome.status !== undefined) {
    failed = outcome.status >= 500;
  } else {
    return Verdict.Ignored;
  }
  if (!failed && slowCallMs !== undefined && outcome.durationMs >= slowCallMs) failed = true;
  return failed ? Verdict.Failure : Verdict.Success;
}
