// A small `sh` process outside every child group that kills the recorded groups when Lamplighter's end of its pipe closes.
import { spawn, type ChildProcess } from 'node:child_process';

/**
 * The watchdog's program (POSIX sh, so dash, bash and busybox all run it). It reads lines from
 * stdin: `+ PGID` records a process group, `- PGID` forgets one. When stdin reaches end of file —
 * Lamplighter exited, crashed or was killed with SIGKILL, and the kernel closed its end — every
 * group still recorded gets SIGKILL. Terminal and shutdown signals are ignored so it outlives
 * Lamplighter by the moment it needs; it reads nothing else and holds no other file open.
 */
const WATCHDOG_SCRIPT = `trap '' INT TERM HUP QUIT
groups=''
while read -r op id; do
  case "$op" in
    +) groups="$groups $id" ;;
    -) kept=''; for g in $groups; do [ "$g" = "$id" ] || kept="$kept $g"; done; groups=$kept ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
`;

/** Restarts allowed within {@link RESTART_WINDOW_MS} before the watchdog is given up. */
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 10_000;

/**
 * Keeps one watchdog process per Lamplighter process, started with the first child group and
 * restarted (with every live group sent again) if it dies. Without `/bin/sh` it warns once and
 * children then outlive a Lamplighter killed with SIGKILL, as they would without it.
 */
export class GroupWatchdog {
  readonly #groups: () => Iterable<number>;
  #child: ChildProcess | undefined;
  #restarts: number[] = [];
  #disabled = false;

  /** `groups` lists the live groups, replayed to a restarted watchdog. */
  constructor(groups: () => Iterable<number>) {
    this.#groups = groups;
  }

  /** Process id of the watchdog, while one runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Records a group the watchdog must kill if Lamplighter dies; `groups` must list it already. */
  watch(pgid: number): void {
    // A watchdog started now is sent every live group, this one included.
    if (this.#child) this.#send(`+ ${pgid}\n`);
    else this.#start();
  }

  /** Forgets a group that has been swept (its id may be reused afterwards). */
  unwatch(pgid: number): void {
    if (this.#child) this.#send(`- ${pgid}\n`);
  }

  #send(line: string): void {
    const stdin = this.#child?.stdin;
    if (stdin && !stdin.destroyed) stdin.write(line);
  }

  #start(): ChildProcess | undefined {
    if (this.#disabled) return undefined;
    // Its own session: a Ctrl-C or hangup meant for Lamplighter's terminal does not reach it.
    const child = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, 'lamplighter-watchdog'], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    this.#child = child;
    child.once('error', (err) => {
      if (this.#child === child) this.#child = undefined;
      this.#disabled = true;
      process.emitWarning(`Lamplighter could not start its process-group watchdog (/bin/sh): ${err.message}; process functions' children will outlive a Lamplighter killed with SIGKILL`, {
        code: 'LL_WATCHDOG_UNAVAILABLE',
      });
    });
    child.once('exit', () => this.#onExit(child));
    // Write errors (EPIPE once it is gone) are handled by the exit path.
    child.stdin?.on('error', () => {});
    // It must never keep Lamplighter running.
    child.unref();
    (child.stdin as { unref?: () => void } | null)?.unref?.();
    for (const pgid of this.#groups()) child.stdin?.write(`+ ${pgid}\n`);
    return child;
  }

  #onExit(child: ChildProcess): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    if (this.#disabled || [...this.#groups()].length === 0) return;
    const now = performance.now();
    this.#restarts = this.#restarts.filter((at) => now - at < RESTART_WINDOW_MS);
    if (this.#restarts.length >= MAX_RESTARTS) {
      this.#disabled = true;
      process.emitWarning(`Lamplighter's process-group watchdog keeps exiting; process functions' children will outlive a Lamplighter killed with SIGKILL`, {
        code: 'LL_WATCHDOG_UNAVAILABLE',
      });
      return;
    }
    this.#restarts.push(now);
    this.#start();
  }
}
