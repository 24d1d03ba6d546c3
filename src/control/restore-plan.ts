// Which revision of an app a starting node tries first, and what it says when it serves another.
import type { AppRecord, Revision } from '../store/index.js';

/** Why a node serves another revision of an app than its current one, or none; `ls` prints `message`. */
export interface RestoreNote {
  /** The revision served instead; absent when none could be restored. */
  revision?: number;
  /** The revision the `current` pointer names; absent when it names none. */
  current?: number;
  /** What is wrong with the current revision. */
  reason: string;
  /** One sentence: "restored from revision 1 (current revision 2 damaged: …)". */
  message: string;
}

/**
 * The revisions to try, best first: the current one when it is intact, then the newest intact
 * revision before it, then (only if none is before it) the newest after it — an app rolled back
 * past a revision should not come back on that one unless nothing else is left.
 */
export function restoreOrder(record: AppRecord): Revision[] {
  const newestFirst = [...record.revisions].sort((a, b) => b.number - a.number);
  const current = record.current;
  if (current === undefined) return newestFirst;
  const head = record.damage === undefined ? newestFirst.filter((r) => r.number === current) : [];
  return [...head, ...newestFirst.filter((r) => r.number < current), ...newestFirst.filter((r) => r.number > current)];
}

/** The note for an app served from `served` (or nothing) instead of its current revision. */
export function restoreNote(record: AppRecord, served: number | undefined, problem: { damaged: boolean; reason: string }): RestoreNote {
  const why = record.current === undefined
    ? `the current pointer is damaged: ${problem.reason}`
    : `current revision ${record.current} ${problem.damaged ? 'damaged' : 'could not be restored'}: ${problem.reason}`;
  const message = served === undefined ? `not serving: no revision could be restored (${why})` : `restored from revision ${served} (${why})`;
  return { ...(served === undefined ? {} : { revision: served }), ...(record.current === undefined ? {} : { current: record.current }), reason: problem.reason, message };
}
