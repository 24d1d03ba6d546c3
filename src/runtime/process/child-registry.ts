// Process-wide record of live child process groups, the exit hook that kills them all, and the watchdog for SIGKILL.
import os from 'node:os';
import { killCgroup } from './child-cgroup.js';
import { GroupWatchdog } from './group-watchdog.js';

/** Live groups, each with the cgroup directory its child was started in, if any. */
const liveGroups = new Map<number, string | undefined>();
// Exit hooks do not run when Lamplighter is killed with SIGKILL; the watchdog does the same job then.
const watchdog = new GroupWatchdog(() => liveGroups);

/** Sends `signal` to every process in group `pgid`; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM and the like: fall back to the leader alone.
    try {
      process.kill(pgid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * Records a process group a spawned child leads, and the cgroup it was started in if any, so the
 * exit hook — or the watchdog, if Lamplighter is killed — can kill them.
 */
export function registerChildGroup(pgid: number, cgroupDir?: string): void {
  liveGroups.set(pgid, cgroupDir);
  watchdog.watch(pgid, cgroupDir);
}

/** Forgets a process group once it has been swept. */
export function unregisterChildGroup(pgid: number): void {
  if (liveGroups.delete(pgid)) watchdog.unwatch(pgid);
}

/** Process group ids of every child still recorded as live. */
export function liveChildGroups(): number[] {
  return [...liveGroups.keys()];
}

/**
 * Sends `signal` (SIGKILL unless told) to every live child group at once; synchronous. SIGKILL
 * also kills each child's cgroup and forgets the groups here, but not in the watchdog: it removes
 * the cgroups once Lamplighter has exited (this is the exit hook's call).
 */
export function killAllChildGroups(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const pgid of liveGroups.keys()) signalGroup(pgid, signal);
  if (signal !== 'SIGKILL') return;
  for (const cgroupDir of liveGroups.values()) {
    // Descendants that left the group are still in the child's cgroup.
    if (cgroupDir !== undefined) killCgroup(cgroupDir);
  }
  liveGroups.clear();
}

/** Options for {@link installExitHook}. */
export interface ExitHookOptions {
  /** Signals on which to kill every child group and then exit. @default ['SIGINT', 'SIGTERM'] */
  signals?: NodeJS.Signals[];
  /**
   * After killing children on a signal, exit with 128 + the signal number — what the process
   * would have done without a handler. Set false when another handler decides when to exit.
   * @default true
   */
  exitOnSignal?: boolean;
}

/**
 * Makes sure no child process group outlives Lamplighter: on `process.on('exit')` and on the
 * given signals every live group is sent SIGKILL. Graceful stops (drain, SIGTERM) are the
 * factories' job; this is the last resort. Not installed at import time. Returns an uninstaller.
 */
export function installExitHook(options: ExitHookOptions = {}): () => void {
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  const exitOnSignal = options.exitOnSignal ?? true;
  const onExit = (): void => killAllChildGroups('SIGKILL');
  const onSignal = (signal: NodeJS.Signals): void => {
    killAllChildGroups('SIGKILL');
    if (exitOnSignal) process.exit(128 + (os.constants.signals[signal] ?? 0));
  };
  process.on('exit', onExit);
  for (const signal of signals) process.on(signal, onSignal);
  return () => {
    process.off('exit', onExit);
    for (const signal of signals) process.off(signal, onSignal);
  };
}
