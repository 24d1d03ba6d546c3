// Tests that process functions' children die with their node: a real `lamplighter up` killed with SIGKILL.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { CliProcess, REPO, killAllChildren } from './cli-helpers.js';
import { cgroupV2Writable, isAlive } from './proc-helpers.js';

const ECHO_SERVER = path.join(REPO, 'test', 'fixtures', 'process', 'echo-server.mjs');


/** Process group of `pid`, from /proc. */
function pgidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/** The cgroup v2 path of `pid` (the `0::` line of /proc/PID/cgroup). */
function cgroupOf(pid: number): string {
  return /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1] ?? '';
}


/** Pids of the watchdogs `parent` started (children whose command line names lamplighter-watchdog). */
function watchdogsOf(parent: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== parent) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('lamplighter-watchdog') && isAlive(Number(entry))) found.push(Number(entry));
    } catch {
      // exited while being read
    }
  }
  return found;
}

/** Reads the pid a child wrote to `file`, waiting for it (bounded). */
async function pidFrom(file: string, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (/^\d+\n$/.test(text)) return Number(text);
    if (Date.now() > deadline) throw new Error(`no pid in ${file} within ${timeoutMs} ms`);
    await delay(25);
  }
}

/**
 * A process function whose `sh` wrapper records its own pid (the group leader, which then becomes
 * the server), starts a `sleep` that stays in its group, and — when `escape` is set — one that
 * leaves it with setsid.
 */
function processFunction(name: string, route: string, pidDir: string, escape: boolean): string {
  const script = [
    `sleep 300 & echo $! > "$PID_DIR/${name}-member.tmp" && mv "$PID_DIR/${name}-member.tmp" "$PID_DIR/${name}-member"`,
    escape ? `setsid sleep 300 & echo $! > "$PID_DIR/${name}-escaped.tmp" && mv "$PID_DIR/${name}-escaped.tmp" "$PID_DIR/${name}-escaped"` : ':',
    `echo $$ > "$PID_DIR/${name}-leader.tmp" && mv "$PID_DIR/${name}-leader.tmp" "$PID_DIR/${name}-leader"`,
    `exec node ${JSON.stringify(ECHO_SERVER)}`,
  ].join('; ');
  return [
    '[[function]]',
    `name = "${name}"`,
    'runtime = "process"',
    `command = ["sh", "-c", ${JSON.stringify(script)}]`,
    `routes = ["${route}"]`,
    'ready = "/healthz"',
    '[function.scale]',
    'min = 1',
    '[function.env]',
    `PID_DIR = ${JSON.stringify(pidDir)}`,
    '',
  ].join('\n');
}

describe('process lifetime', { timeout: 120_000 }, () => {
  const dirs: string[] = [];
  const strays: number[] = [];

  after(async () => {
    killAllChildren();
    // Whatever a failed run left behind must not outlive the test.
    for (const pid of strays) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  test('process functions — kill -9 of the node takes every child and its group within 2 s, and its cgroup where there is one', async (t) => {
    const appDir = await mkdtemp(path.join(tmpdir(), 'lamplighter-lifetime-'));
    dirs.push(appDir);
    await writeFile(
      path.join(appDir, 'lamplighter.toml'),
      `name = "lifetime"\n\n${processFunction('stays', '/stays', appDir, false)}\n${processFunction('leaves', '/leaves', appDir, true)}`,
    );
    const node = new CliProcess(['up', appDir, '--port', '0', '--admin-port', '0'], { timeoutMs: 60_000 });
    await node.waitForOutput(/Serving app 'lifetime'/, 60_000);
    const pids: Record<string, number> = {};
    for (const fn of ['stays', 'leaves']) {
      for (const role of ['leader', 'member']) pids[`${fn}-${role}`] = await pidFrom(path.join(appDir, `${fn}-${role}`));
    }
    const escaped = await pidFrom(path.join(appDir, 'leaves-escaped'));
    strays.push(...Object.values(pids), escaped);
    for (const fn of ['stays', 'leaves']) {
      const leader = pids[`${fn}-leader`]!;
      assert.equal(pgidOf(leader), leader, `${fn}: the child leads its own process group`);
      assert.equal(pgidOf(pids[`${fn}-member`]!), leader, `${fn}: the sleep stayed in the child's group`);
    }
    assert.notEqual(pgidOf(escaped), pids['leaves-leader'], 'the setsid sleep left the group');
    for (const [role, pid] of Object.entries(pids)) assert.ok(isAlive(pid), `${role} (pid ${pid}) runs before the kill`);
    // Where the machine allows cgroups, each child has one, and the one that left the group goes too.
    if (cgroupV2Writable()) {
      assert.match(cgroupOf(pids['leaves-leader']!), /\/lamplighter-\d+\//, 'the child runs in a cgroup of its own');
      assert.equal(cgroupOf(escaped), cgroupOf(pids['leaves-leader']!), "the setsid sleep is still in the child's cgroup");
      pids['leaves-escaped'] = escaped;
    } else {
      t.diagnostic('no cgroup v2 here: the process that left its group is not required to go');
    }

    // A watchdog that dies is replaced, and the new one is given every live group.
    const [watchdog] = watchdogsOf(node.child.pid!);
    assert.ok(watchdog !== undefined, 'the node runs a watchdog');
    process.kill(watchdog, 'SIGKILL');
    let replacement: number | undefined;
    for (let i = 0; i < 250 && replacement === undefined; i++) {
      await delay(20);
      replacement = watchdogsOf(node.child.pid!).find((pid) => pid !== watchdog);
    }
    assert.ok(replacement !== undefined, 'a new watchdog replaces the one killed');

    node.child.kill('SIGKILL');
    await node.closed;
    const killedAt = Date.now();
    // Polled well past the bound so a slow death is measured rather than cut off.
    const goneAfter: Record<string, number> = {};
    while (Object.keys(goneAfter).length < Object.keys(pids).length && Date.now() - killedAt < 10_000) {
      for (const [role, pid] of Object.entries(pids)) if (!(role in goneAfter) && !isAlive(pid)) goneAfter[role] = Date.now() - killedAt;
      await delay(20);
    }
    t.diagnostic(`gone after the kill (ms): ${JSON.stringify(goneAfter)}`);
    for (const role of Object.keys(pids)) {
      assert.ok(role in goneAfter, `${role} (pid ${pids[role]}) still runs 10 s after the node was killed`);
      assert.ok(goneAfter[role]! <= 2_000, `${role} took ${goneAfter[role]} ms to go after the node was killed`);
    }
  });
});
