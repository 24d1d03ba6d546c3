// The Discovery conformance suite: the in-memory network and NATS both run it, with pg's semantics.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { DiscoveryScope, DiscoveryTiming, GroupEvent, Member } from '../src/discovery/index.js';

/** Nodes of one fresh, isolated scope. */
export interface DiscoveryFixture {
  /** Starts node `name` in this fixture's scope. */
  node(name: string, timing?: DiscoveryTiming): Promise<DiscoveryScope>;
  /** Stops `name` at once, with no goodbye. */
  kill(name: string): Promise<void>;
  /** Parts `name` from every other node, both ways. */
  cut(name: string): Promise<void>;
  /** Reconnects `name`. */
  heal(name: string): Promise<void>;
  /** Closes every node still running and what carries them. */
  close(): Promise<void>;
}

/** An implementation under test. */
export interface DiscoveryTarget {
  /** Shown in test names: "<name> discovery — <behaviour>". */
  name: string;
  /** A fixture whose nodes see only each other. */
  createFixture(): Promise<DiscoveryFixture>;
}

/** Short timings so that drops and heals take well under a second. */
export const TEST_TIMING: DiscoveryTiming = { heartbeatMs: 100, downAfterMs: 400 };

/** Polls `check` every 10 ms until it holds, for at most `timeoutMs`; fails with `what`. */
export async function waitFor(check: () => boolean, what: () => string, timeoutMs = 3000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (let round = 0; round < timeoutMs / 10 + 1; round++) {
    if (check()) return;
    if (Date.now() > until) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (!check()) assert.fail(`not within ${timeoutMs} ms: ${what()}`);
}

/** Members as a sorted list of `node/id=data`, one per join: equal multisets compare equal. */
export function memberKeys(members: Iterable<Member>): string[] {
  return [...members].map((m) => `${m.node}/${m.id}=${JSON.stringify(m.data)}`).sort();
}

/** Every group's members of `scope`, as comparable text. */
function wholeView(scope: DiscoveryScope): string {
  return JSON.stringify(
    scope
      .groups()
      .sort()
      .map((group) => [group, memberKeys(scope.members(group))]),
  );
}

/** A multiset built from a monitor's snapshot and its events; notes a leave or update of what it does not hold. */
class Tally {
  readonly #counts = new Map<string, number>();
  readonly #data = new Map<string, string>();
  readonly errors: string[] = [];

  add(members: readonly Member[]): void {
    for (const member of members) this.#join(member);
  }

  on(event: GroupEvent): void {
    for (const member of event.members) {
      if (event.kind === 'join') this.#join(member);
      else if (event.kind === 'leave') this.#leave(member);
      else this.#update(member);
    }
  }

  /** As {@link memberKeys} gives them. */
  keys(): string[] {
    return [...this.#counts].flatMap(([key, count]) => Array<string>(count).fill(`${key}=${this.#data.get(key)}`)).sort();
  }

  #join(member: Member): void {
    const key = `${member.node}/${member.id}`;
    this.#data.set(key, JSON.stringify(member.data));
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  #leave(member: Member): void {
    const key = `${member.node}/${member.id}`;
    const count = this.#counts.get(key) ?? 0;
    if (count === 0) this.errors.push(`leave of ${key}, which the monitor did not hold`);
    else if (count === 1) this.#counts.delete(key);
    else this.#counts.set(key, count - 1);
  }

  #update(member: Member): void {
    const key = `${member.node}/${member.id}`;
    if (!this.#counts.has(key)) this.errors.push(`update of ${key}, which the monitor did not hold`);
    this.#data.set(key, JSON.stringify(member.data));
  }
}

/** Registers the suite's tests for `target`. */
export function runDiscoveryConformance(target: DiscoveryTarget): void {
  describe(`${target.name} discovery`, () => {
    const fixtures: DiscoveryFixture[] = [];
    after(async () => {
      await Promise.all(fixtures.map((f) => f.close()));
    });
    const fresh = async (): Promise<DiscoveryFixture> => {
      const fixture = await target.createFixture();
      fixtures.push(fixture);
      return fixture;
    };

    test(`${target.name} discovery — a member joined twice must leave twice`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const b = await f.node('b', TEST_TIMING);
      a.join('g', 'm1', { n: 1 });
      a.join('g', 'm1', { n: 1 });
      assert.equal(a.members('g').length, 2);
      assert.equal(a.localMembers('g').length, 2);
      await waitFor(() => b.members('g').length === 2, () => `b sees ${memberKeys(b.members('g'))}`);
      assert.equal(b.localMembers('g').length, 0);
      assert.equal(a.leave('g', 'm1'), true);
      assert.deepEqual(memberKeys(a.members('g')), ['a/m1={"n":1}']);
      assert.deepEqual(a.groups(), ['g']);
      assert.equal(a.leave('g', 'm1'), true);
      assert.deepEqual(a.members('g'), []);
      assert.deepEqual(a.groups(), []);
      assert.equal(a.leave('g', 'm1'), false);
      await waitFor(() => b.members('g').length === 0, () => `b still sees ${memberKeys(b.members('g'))}`);
      assert.deepEqual(b.groups(), []);
    });

    test(`${target.name} discovery — leave of a non-member is false and changes nothing`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const events: GroupEvent[] = [];
      const monitor = a.monitor('g', (event) => events.push(event));
      a.join('g', 'm1');
      assert.equal(a.leave('g', 'other'), false);
      assert.equal(a.leave('nowhere', 'm1'), false);
      assert.deepEqual(memberKeys(a.members('g')), ['a/m1={}']);
      assert.deepEqual(
        events.map((e) => e.kind),
        ['join'],
      );
      monitor.stop();
    });

    test(`${target.name} discovery — members and localMembers answer at once, with no round trip`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const b = await f.node('b', TEST_TIMING);
      b.join('g', 'remote');
      await waitFor(() => a.members('g').length === 1, () => `a sees ${memberKeys(a.members('g'))}`);
      a.join('g', 'local', { address: '10.0.0.1:80' });
      // No await between the join and the reads.
      assert.deepEqual(memberKeys(a.localMembers('g')), ['a/local={"address":"10.0.0.1:80"}']);
      assert.deepEqual(memberKeys(a.members('g')), ['a/local={"address":"10.0.0.1:80"}', 'b/remote={}']);
      assert.deepEqual(a.groups(), ['g']);
      assert.ok(a.nodes().some((n) => n.name === 'a' && n.self));
      assert.ok(a.nodes().some((n) => n.name === 'b' && !n.self));
    });

    test(`${target.name} discovery — a monitor racing joins and leaves on another node loses and doubles nothing`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const b = await f.node('b', TEST_TIMING);
      let seed = 7;
      const random = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const held = new Map<string, number>();
      const step = (): void => {
        const id = `m${random(8)}`;
        const count = held.get(id) ?? 0;
        if (count > 0 && random(2) === 0) {
          assert.equal(b.leave('g', id), true);
          held.set(id, count - 1);
        } else {
          b.join('g', id, { k: random(3) });
          held.set(id, count + 1);
        }
        if (random(4) === 0 && (held.get(id) ?? 0) > 0) b.update('g', id, { k: random(100) });
      };
      // A local monitor sees each change the moment it happens.
      const localTally = new Tally();
      const localMonitor = b.monitor('g', (event) => localTally.on(event));
      const tallies: Tally[] = [];
      const monitors: Array<{ stop(): void }> = [localMonitor];
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < 5; i++) step();
        if (round % 3 === 0) {
          const tally = new Tally();
          const monitor = a.monitor('g', (event) => tally.on(event));
          tally.add(monitor.members);
          tallies.push(tally);
          monitors.push(monitor);
        }
        await new Promise((resolve) => setImmediate(resolve));
        if (round % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await waitFor(
        () => JSON.stringify(memberKeys(a.members('g'))) === JSON.stringify(memberKeys(b.localMembers('g'))),
        () => `a sees ${memberKeys(a.members('g'))}, b holds ${memberKeys(b.localMembers('g'))}`,
      );
      assert.deepEqual(localTally.errors, []);
      assert.deepEqual(localTally.keys(), memberKeys(b.localMembers('g')));
      for (const [i, tally] of tallies.entries()) {
        assert.deepEqual(tally.errors, [], `monitor ${i}`);
        assert.deepEqual(tally.keys(), memberKeys(a.members('g')), `monitor ${i}`);
      }
      for (const monitor of monitors) monitor.stop();
    });

    test(`${target.name} discovery — a node that starts late sees everyone's members`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const b = await f.node('b', TEST_TIMING);
      a.join('nodes', 'a', { address: 'a:1' });
      b.join('nodes', 'b', { address: 'b:1' });
      a.join('fn:echo', 'i1', { node: 'a:1', free: 4 });
      b.join('fn:echo', 'i2', { node: 'b:1', free: 2 });
      b.join('fn:echo', 'i2', { node: 'b:1', free: 2 });
      await waitFor(() => a.members('fn:echo').length === 3 && b.members('fn:echo').length === 3, () => 'a and b see each other');
      const c = await f.node('c', TEST_TIMING);
      await waitFor(
        () => wholeView(c) === wholeView(a),
        () => `c sees ${wholeView(c)}, a sees ${wholeView(a)}`,
      );
      assert.equal(c.members('fn:echo').length, 3);
      assert.deepEqual(
        c
          .nodes()
          .map((n) => n.name)
          .sort(),
        ['a', 'b', 'c'],
      );
    });

    test(`${target.name} discovery — what a node did alone reaches a node that comes later`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      a.join('g', 'kept', { free: 1 });
      a.join('g', 'gone');
      a.update('g', 'kept', { free: 3 });
      a.leave('g', 'gone');
      const b = await f.node('b', TEST_TIMING);
      await waitFor(() => wholeView(b) === wholeView(a), () => `b sees ${wholeView(b)}, a holds ${wholeView(a)}`);
      assert.deepEqual(memberKeys(b.members('g')), ['a/kept={"free":3}']);
      a.update('g', 'kept', { free: 2 });
      await waitFor(() => b.members('g')[0]?.data.free === 2, () => `b sees ${wholeView(b)}`);
    });

    test(`${target.name} discovery — a killed node is dropped with its members within the drop time`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const b = await f.node('b', TEST_TIMING);
      const c = await f.node('c', TEST_TIMING);
      b.join('g', 'b1');
      b.join('g', 'b2');
      c.join('g', 'c1');
      await waitFor(() => a.members('g').length === 3, () => `a sees ${memberKeys(a.members('g'))}`);
      const leaves: Member[] = [];
      const monitor = a.monitor('g', (event) => {
        if (event.kind === 'leave') leaves.push(...event.members);
      });
      const killedAt = Date.now();
      await f.kill('b');
      const limit = TEST_TIMING.downAfterMs! + 2 * TEST_TIMING.heartbeatMs! + 300;
      await waitFor(
        () => memberKeys(a.members('g')).join() === 'c/c1={}' && memberKeys(c.members('g')).join() === 'c/c1={}',
        () => `a sees ${memberKeys(a.members('g'))}, c sees ${memberKeys(c.members('g'))}`,
        limit,
      );
      const took = Date.now() - killedAt;
      assert.ok(took >= TEST_TIMING.heartbeatMs!, `dropped after ${took} ms, before any heartbeat could be missed`);
      assert.deepEqual(memberKeys(leaves), ['b/b1={}', 'b/b2={}']);
      assert.ok(!a.nodes().some((n) => n.name === 'b'));
      monitor.stop();
    });

    test(`${target.name} discovery — a closed node's members leave at once`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const b = await f.node('b', TEST_TIMING);
      b.join('g', 'b1');
      await waitFor(() => a.members('g').length === 1, () => 'a sees b1');
      const closedAt = Date.now();
      await b.close();
      await waitFor(() => a.members('g').length === 0, () => 'a still sees b1', TEST_TIMING.downAfterMs! - 100);
      assert.ok(Date.now() - closedAt < TEST_TIMING.downAfterMs!);
      assert.ok(!a.nodes().some((n) => n.name === 'b'));
    });

    test(`${target.name} discovery — after a partition heals, both sides converge`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const b = await f.node('b', TEST_TIMING);
      const c = await f.node('c', TEST_TIMING);
      a.join('g', 'a1');
      b.join('g', 'b1');
      c.join('g', 'c1');
      c.join('h', 'c2', { free: 1 });
      await waitFor(() => [a, b, c].every((s) => s.members('g').length === 3), () => 'all see three members');
      await f.cut('c');
      await waitFor(
        () => memberKeys(a.members('g')).join() === 'a/a1={},b/b1={}' && memberKeys(c.members('g')).join() === 'c/c1={}',
        () => `a sees ${memberKeys(a.members('g'))}, c sees ${memberKeys(c.members('g'))}`,
      );
      assert.deepEqual(a.members('h'), []);
      // Changes on both sides while parted.
      a.join('g', 'a2');
      b.leave('g', 'b1');
      c.join('g', 'c3');
      c.update('h', 'c2', { free: 7 });
      c.leave('g', 'c1');
      await new Promise((resolve) => setTimeout(resolve, 2 * TEST_TIMING.heartbeatMs!));
      assert.deepEqual(memberKeys(a.members('g')), ['a/a1={}', 'a/a2={}']);
      await f.heal('c');
      const want = JSON.stringify([
        ['g', ['a/a1={}', 'a/a2={}', 'c/c3={}']],
        ['h', ['c/c2={"free":7}']],
      ]);
      await waitFor(
        () => [a, b, c].every((s) => wholeView(s) === want),
        () => `a: ${wholeView(a)} b: ${wholeView(b)} c: ${wholeView(c)}`,
        5000,
      );
    });

    test(`${target.name} discovery — updates reach the others, coalesced`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const b = await f.node('b', TEST_TIMING);
      a.join('fn:echo', 'i1', { node: 'a:1', free: 0 });
      await waitFor(() => b.members('fn:echo').length === 1, () => 'b sees i1');
      const updates: GroupEvent[] = [];
      const monitor = b.monitor('fn:echo', (event) => {
        if (event.kind === 'update') updates.push(event);
      });
      for (let free = 1; free <= 100; free++) a.update('fn:echo', 'i1', { node: 'a:1', free });
      assert.deepEqual(a.localMembers('fn:echo')[0]?.data, { node: 'a:1', free: 100 });
      await waitFor(
        () => b.members('fn:echo')[0]?.data.free === 100,
        () => `b sees ${memberKeys(b.members('fn:echo'))}`,
      );
      assert.ok(updates.length >= 1 && updates.length <= 3, `${updates.length} update events for 100 updates in one turn`);
      assert.deepEqual(updates.at(-1)?.members.map((m) => m.data), [{ node: 'a:1', free: 100 }]);
      // An update of a member that has left is dropped, not resurrected.
      a.leave('fn:echo', 'i1');
      a.update('fn:echo', 'i1', { node: 'a:1', free: 5 });
      await waitFor(() => b.members('fn:echo').length === 0, () => 'b still sees i1');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(b.members('fn:echo').length, 0);
      monitor.stop();
    });

    test(`${target.name} discovery — monitorScope sees every group, snapshot then changes`, async () => {
      const f = await fresh();
      const a = await f.node('a', TEST_TIMING);
      const b = await f.node('b', TEST_TIMING);
      b.join('x', '1');
      await waitFor(() => a.members('x').length === 1, () => 'a sees x/1');
      const events: string[] = [];
      const watch = a.monitorScope((event) => events.push(`${event.kind} ${event.group} ${memberKeys(event.members).join()}`));
      assert.deepEqual([...watch.groups.keys()], ['x']);
      b.join('y', '2');
      b.leave('x', '1');
      await waitFor(() => events.length === 2, () => `events ${events.join('; ')}`);
      assert.deepEqual(events, ['join y b/2={}', 'leave x b/1={}']);
      watch.stop();
      b.join('z', '3');
      await waitFor(() => a.members('z').length === 1, () => 'a sees z/3');
      assert.equal(events.length, 2);
    });
  });
}
