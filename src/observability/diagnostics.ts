// Named diagnostics channels on which Lamplighter publishes its internal events.
import diagnostics from 'node:diagnostics_channel';

/** `lamplighter:gateway:request` — one message per answered request. */
export const requestChannel = diagnostics.channel('lamplighter:gateway:request');
/** `lamplighter:instance:start` — an instance was lit. */
export const instanceStartChannel = diagnostics.channel('lamplighter:instance:start');
/** `lamplighter:instance:stop` — an instance was put out. */
export const instanceStopChannel = diagnostics.channel('lamplighter:instance:stop');

/** Payload of {@link requestChannel}. */
export interface RequestEvent {
  function: string;
  status: number;
  durationMs: number;
  coldStart: boolean;
  requestId: string;
}

/** Payload of the instance channels. */
export interface InstanceEvent {
  function: string;
  instance: string;
  reason?: string;
}
