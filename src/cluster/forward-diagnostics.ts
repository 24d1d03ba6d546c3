// The named diagnostics channel on which forwarding to peer nodes reports each outcome.
import diagnostics from 'node:diagnostics_channel';

/** How one forward ended, as far as this node saw it. */
export type ForwardOutcome =
  /** The peer answered (any status); for an upgrade, 101 or the status it refused with. */
  | 'answered'
  /** The peer could not be reached; nothing of the request got to it. */
  | 'unreachable'
  /** The peer failed after the request went out (a 502 for the user). */
  | 'failed'
  /** The request's client left or its deadline passed before the peer answered. */
  | 'abandoned'
  /** This node refused to forward it: shutting down, or the request was forwarded here already. */
  | 'refused';

/** What {@link forwardChannel} publishes. */
export interface ForwardEvent {
  /** `host:port` of the peer. */
  peer: string;
  /** The peer's node name, when the caller gave it. */
  node: string | undefined;
  kind: 'request' | 'upgrade';
  outcome: ForwardOutcome;
  /** The peer's status, for `answered`. */
  status: number | undefined;
  /** From the call until the answer's head (or the failure), waiting for a free connection included. */
  durationMs: number;
}

/** One {@link ForwardEvent} per forwarded request or upgrade, once its answer's head or its failure is known. */
export const forwardChannel = diagnostics.channel('lamplighter:cluster:forward');
