// One cgroup v2 per process instance, so a stop also ends descendants that left the child's process group.
import { mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** Whether this machine lets Lamplighter give each child a cgroup, and if not, why. */
export type CgroupSupport = { readonly available: true; readonly base: string } | { readonly available: false; readonly reason: string };

let support: CgroupSupport | undefined;

/** The cgroup v2 mount point from /proc/self/mountinfo (a unified or hybrid hierarchy). */
function _cgroup2Mount(): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [mountPart, fsPart] = line.split(' - ');
    if (fsPart?.split(' ')[0] !== 'cgroup2') continue;
    const mountPoint = mountPart?.split(' ')[4];
    if (mountPoint) return mountPoint.replace(/\\040/g, ' ');
  }
  return undefined;
}

/**
 * Checks once per process whether a cgroup v2 hierarchy is mounted, Lamplighter's own cgroup in
 * it is writable and cgroup.kill exists (Linux 5.14+). If so, `base` is `lamplighter-<pid>` under
 * Lamplighter's cgroup, which holds one cgroup per child. Never throws.
 */
export function cgroupSupport(): CgroupSupport {
  if (support) return support;
  support = _detect();
  return support;
}

function _detect(): CgroupSupport {
  if (process.platform !== 'linux') return { available: false, reason: `cgroups are Linux-only (this is ${process.platform})` };
  let mount: string | undefined;
  let own: string | undefined;
  try {
    mount = _cgroup2Mount();
    own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  } catch (err) {
    return { available: false, reason: `cannot read /proc: ${(err as Error).message}` };
  }
  if (!mount) return { available: false, reason: 'no cgroup v2 hierarchy is mounted' };
  if (own === undefined) return { available: false, reason: 'this process is in no cgroup v2 cgroup' };
  const base = path.join(mount, own, `lamplighter-${process.pid}`);
  // A trial directory, removed at once: the real one is made with the first child's, and the
  // watchdog removes it once Lamplighter has exited.
  try {
    mkdirSync(base);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') return { available: false, reason: `cannot create ${base} (${code ?? String(err)}): the cgroup is not delegated to this user` };
  }
  let hasKill = false;
  try {
    // Write-only, and only '1' may be written: its presence is the test.
    statSync(path.join(base, 'cgroup.kill'));
    hasKill = true;
  } catch {
    // cgroup.kill arrived in Linux 5.14; without it a stop could miss a process forking as it is killed.
  }
  try {
    rmdirSync(base);
  } catch {
    // in use already
  }
  if (!hasKill) return { available: false, reason: `${base} has no cgroup.kill (Linux 5.14 or later is needed)` };
  return { available: true, base };
}

/** Process group of `pid` from /proc (its fifth field), or undefined once it is gone. */
async function _processGroupOf(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/** The cgroup of one child: created before it starts, killed and removed when it stops. */
export class ChildCgroup {
  /** Absolute path of the cgroup directory. */
  readonly dir: string;

  /** Creates the cgroup `name` under Lamplighter's own; throws when the machine does not allow it. */
  constructor(base: string, name: string) {
    this.dir = path.join(base, name.replace(/[^A-Za-z0-9_.-]/g, '_'));
    mkdirSync(base, { recursive: true });
    mkdirSync(this.dir);
  }

  /** Process ids in the cgroup now; empty once it is gone. */
  async pids(): Promise<number[]> {
    const text = await readFile(path.join(this.dir, 'cgroup.procs'), 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map(Number);
  }

  /** Sends `signal` to every process in the cgroup, but those in process group `exceptGroup` when given. */
  async signal(signal: NodeJS.Signals, options: { exceptGroup?: number } = {}): Promise<void> {
    for (const pid of await this.pids()) {
      if (options.exceptGroup !== undefined && (await _processGroupOf(pid)) === options.exceptGroup) continue;
      try {
        process.kill(pid, signal);
      } catch {
        // exited meanwhile
      }
    }
  }

  /** True once no process is left in the cgroup. */
  async empty(): Promise<boolean> {
    const events = await readFile(path.join(this.dir, 'cgroup.events'), 'utf8').catch(() => 'populated 0');
    return /^populated 0$/m.test(events);
  }

  /** Resolves true once the cgroup is empty, false if `ms` pass first. */
  async waitEmpty(ms: number): Promise<boolean> {
    const until = performance.now() + ms;
    for (;;) {
      if (await this.empty()) return true;
      if (performance.now() >= until) return false;
      await delay(Math.min(25, Math.max(1, until - performance.now())));
    }
  }

  /** SIGKILLs every process left (forks racing the kill included), waits for them, and removes the cgroup. */
  async destroy(): Promise<void> {
    this.killNow();
    await this.waitEmpty(5_000);
    await rmdir(this.dir).catch(() => undefined);
  }

  /** For the exit hook: SIGKILLs everything in the cgroup now, without waiting. */
  killNow(): void {
    killCgroup(this.dir);
  }
}

/** SIGKILLs every process in the cgroup at `dir` (through cgroup.kill); nothing if it is gone. */
export function killCgroup(dir: string): void {
  try {
    writeFileSync(path.join(dir, 'cgroup.kill'), '1');
  } catch {
    // already removed
  }
}
