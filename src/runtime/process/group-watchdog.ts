// A small `sh` process outside every child group that kills the recorded groups when Lamplighter's end of its pipe closes.
import { spawn, type ChildProcess } from 'node:child_process';

/**
 * The watchdog's program (POSIX sh, so dash, bash and busybox all run it). It starts with the
 * groups live at its start as arguments — in its command line from the moment it exists, so a
 * Lamplighter killed just after starting it loses none — then reads lines from stdin:
 * `+ PGID` or `+ PGID:CGROUP_DIR` records a process group (and the child's cgroup), `- PGID`
 * forgets one. When stdin reaches end of file — Lamplighter exited, crashed or was killed
 * with SIGKILL, and the kernel closed its end — every group still recorded gets SIGKILL, every
 * cgroup is killed (descendants that left the group included) and then removed, and so is
 * Lamplighter's cgroup directory above them once empty. Terminal and shutdown signals are ignored so it outlives Lamplighter by the
 * moment it needs; it reads nothing else and holds no other file open.
 */
const WATCHDOG_SCRIPT = `trap '' INT TERM HUP QUIT
entries=''; base=''
add() { entries="$entries $1"; case "$1" in *:*) base=\${1#*:}; base=\${base%/*} ;; esac; }
for e in "$@"; do add "$e"; done
while read -r op id; do
  case "$op" in
    +) add "$id" ;;
    -) kept=''; for e in $entries; do [ "\${e%%:*}" = "$id" ] || kept="$kept $e"; done; entries=$kept ;;
  esac
done
for e in $entries; do
  kill -s KILL -- "-\${e%%:*}" 2>/dev/null
  case "$e" in *:*) echo 1 > "\${e#*:}/cgroup.kill" 2>/dev/null ;; esac
done
for e in $entries; do
  case "$e" in *:*)
    d=\${e#*:}; n=0
    while [ -d "$d" ] && ! rmdir "$d" 2>/dev/null && [ $n -lt 50 ]; do n=$((n + 1)); sleep 0.1; done ;;
  esac
done
[ -z "$base" ] || rmdir "$base" 2>/dev/null
`;

/** How the script records a group: `PGID` or `PGID:CGROUP_DIR` (a path with blanks or colons is left out: the script splits on them). */
function _entry(pgid: number, cgroupDir: string | undefined): string {
  return cgroupDir !== undefined && !/\s|:/.test(cgroupDir) ? `${pgid}:${cgroupDir}` : `${pgid}`;
}

/** Restarts allowed within {@link RESTART_WINDOW_MS} before the watchdog is given up. */
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 10_000;

/**
 * Keeps one watchdog process per Lamplighter process, started with the first child group and
 * restarted (and given every live group) if it dies. Without `/bin/sh` it warns once and
 * children then outlive a Lamplighter killed with SIGKILL, as they would without it.
 */
export class GroupWatchdog {
  readonly #groups: () => ReadonlyMap<number, string | undefined>;
  #child: ChildProcess | undefined;
  #restarts: number[] = [];
  #disabled = false;

  /** `groups` lists the live groups and their cgroups, given to each watchdog as it starts. */
  constructor(groups: () => ReadonlyMap<number, string | undefined>) {
    this.#groups = groups;
  }

  /** Records a group (and cgroup) the watchdog must kill if Lamplighter dies; `groups` must list it already. */
  watch(pgid: number, cgroupDir?: string): void {
    // A watchdog started now is sent every live group, this one included.
    if (this.#child) this.#send(`+ ${_entry(pgid, cgroupDir)}\n`);
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
    const live = [...this.#groups()].map(([pgid, cgroupDir]) => _entry(pgid, cgroupDir));
    const child = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, 'lamplighter-watchdog', ...live], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    this.#child = child;
    child.once('error', (err) => {
      if (this.#child === child) this.#child = undefined;
      this.#disabled = true;
      process.emitWarning(`Lamplighter could not start its process-group watchdog (/bin/sh): ${err.message}; process functions' children will outlive a Lamplighter killed with SIGKILL`);
    });
    child.once('exit', () => this.#onExit(child));
    // Write errors (EPIPE once it is gone) are handled by the exit path.
    child.stdin?.on('error', () => {});
    // It must never keep Lamplighter running.
    child.unref();
    (child.stdin as { unref?: () => void } | null)?.unref?.();
    return child;
  }

  #onExit(child: ChildProcess): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    if (this.#disabled || this.#groups().size === 0) return;
    const now = performance.now();
    this.#restarts = this.#restarts.filter((at) => now - at < RESTART_WINDOW_MS);
    if (this.#restarts.length >= MAX_RESTARTS) {
      this.#disabled = true;
      process.emitWarning(`Lamplighter's process-group watchdog keeps exiting; process functions' children will outlive a Lamplighter killed with SIGKILL`);
      return;
    }
    this.#restarts.push(now);
    this.#start();
  }
}
