// Epochs of breaker decisions: ordered across owners, so the newest decision wins everywhere.

/**
 * When a decision was taken, as (time, seq, node): the owner's wall clock in ms, a counter for
 * decisions within the same ms, and the owner's name to break ties between two nodes that both
 * believed they owned the key. An owner never issues an epoch below the newest it has seen for
 * the key, so a successor's decisions come after its predecessor's even if its clock is behind.
 */
export type Epoch = readonly [time: number, seq: number, node: string];

/** Negative when `a` is older than `b`, 0 when equal, positive when newer; no epoch is oldest. */
export function compareEpochs(a: Epoch | null | undefined, b: Epoch | null | undefined): number {
  if (!a) return b ? -1 : 0;
  if (!b) return 1;
  if (a[0] !== b[0]) return a[0] - b[0];
  if (a[1] !== b[1]) return a[1] - b[1];
  return a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0;
}

/** The epoch of a decision `node` takes at `now`, after the newest one known for the key. */
export function nextEpoch(newest: Epoch | null | undefined, now: number, node: string): Epoch {
  if (!newest || now > newest[0]) return [now, 0, node];
  return [newest[0], newest[1] + 1, node];
}
