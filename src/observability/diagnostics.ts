// Named diagnostics channels on which Lamplighter publishes its internal events.
import diagnostics from 'node:diagnostics_channel';

/** `lamplighter:gateway:request` — one message per answered request. */
export const requestChannel = diagnostics.channel('lamplighter:gateway:request');
/** `lamplighter:instance:start` — an instance was lit. */
export const instanceStartChannel = diagnostics.channel('lamplighter:instance:start');
/** `lamplighter:instance:stop` — an instance was put out. */
export const instanceStopChannel = diagnostics.channel('lamplighter:instance:stop');
/** `lamplighter:deploy:step` — a deploy step for one function started or ended (e.g. preparing a component). */
export const deployStepChannel = diagnostics.channel('lamplighter:deploy:step');

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

/** Payload of {@link deployStepChannel}. */
export interface DeployStepEvent {
  function: string;
  /** What is being done, e.g. `preparing component`. */
  step: string;
  phase: 'start' | 'end';
  /** How long the step took (on `end`). */
  durationMs?: number;
  /** How it went (on `end`), e.g. `from the cache` or `failed`. */
  outcome?: string;
}
