// Shared by the process tests: reading process and cgroup state from /proc, apart from Lamplighter's code.
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';

/** True while `pid` exists and is not a zombie left for a non-reaping init. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Whether this machine lets a process make cgroup v2 groups under its own. */
export function cgroupV2Writable(): boolean {
  const mount = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((line) => / - cgroup2 /.test(line))?.split(' ')[4];
  const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  if (!mount || own === undefined) return false;
  const probe = path.join(mount, own, `lamplighter-test-${process.pid}`);
  try {
    mkdirSync(probe);
    const ok = existsSync(path.join(probe, 'cgroup.kill'));
    rmdirSync(probe);
    return ok;
  } catch {
    return false;
  }
}
