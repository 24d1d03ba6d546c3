// Named diagnostics channels on which the process runtime publishes its lifecycle events.
import diagnostics from 'node:diagnostics_channel';

/** A child process was spawned: `{ functionName, instanceId, pid, port }`. */
export const processSpawnChannel = diagnostics.channel('lamplighter:process:spawn');
/** A child passed its readiness probe: `{ functionName, instanceId, pid, port, startupMs }`. */
export const processReadyChannel = diagnostics.channel('lamplighter:process:ready');
/** A child exited: `{ functionName, instanceId, pid, code, signal, expected }`. */
export const processExitChannel = diagnostics.channel('lamplighter:process:exit');
/** A function was marked failed after a crash loop: `{ functionName, message }`. */
export const processCrashLoopChannel = diagnostics.channel('lamplighter:process:crash-loop');
