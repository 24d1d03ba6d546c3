// The discovery protocol itself, over a hub that loses or injects the messages a test picks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DiscoveryEventKind } from '../src/discovery/index.js';
import { ScopeNode } from '../src/discovery/scope-node.js';
import type { WireMessage } from '../src/discovery/wire.js';
import { TEST_TIMING, waitFor } from './discovery-conformance.js';

/** Nodes wired together in memory; `lose` decides which messages never arrive; `log` keeps every one. */
class Hub {
  readonly nodes = new Map<string, ScopeNode>();
  readonly log: Array<{ from: string; to: string; message: WireMessage }> = [];
  lose: (from: string, to: string, message: WireMessage) => boolean = () => false;

  add(name: string, onEvent?: (kind: DiscoveryEventKind) => void): ScopeNode {
    const node = new ScopeNode({ scope: 'test', node: name, timing: TEST_TIMING, onEvent });
    this.nodes.set(name, node);
    const deliver = (to: ScopeNode, message: WireMessage): void => {
      this.log.push({ from: name, to: to.node, message });
      if (this.lose(name, to.node, message)) return;
      setImmediate(() => {
        if (this.nodes.get(to.node) === to) to.receive(message);
      });
    };
    node.attach({
      broadcast: (message) => {
        for (const other of this.nodes.values()) if (other !== node) deliver(other, message);
      },
      send: (to, message) => {
        const target = this.nodes.get(to);
        if (target) deliver(target, message);
      },
    });
    node.startTimers();
    return node;
  }

  async close(): Promise<void> {
    for (const node of this.nodes.values()) await node.close();
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

test('scope node — a delta lost on the way is repaired from the next heartbeat', async () => {
  const hub = new Hub();
  const a = hub.add('a');
  const b = hub.add('b');
  await settle();
  let lost = 0;
  hub.lose = (from, to, message) => from === 'b' && to === 'a' && message.t === 'delta' && lost++ === 0;
  b.join('g', 'b1');
  b.join('g', 'b2');
  await settle();
  assert.equal(lost, 1);
  assert.equal(a.members('g').length, 0);
  await waitFor(() => a.members('g').length === 2, () => 'a sees b1 and b2', 3 * TEST_TIMING.heartbeatMs!);
  assert.ok(hub.log.some((e) => e.from === 'a' && e.to === 'b' && e.message.t === 'syncreq'));
  await hub.close();
});

test('scope node — a sync answered before pending joins went out does not count them twice', async () => {
  const hub = new Hub();
  const a = hub.add('a');
  const b = hub.add('b');
  await settle();
  const incarnation = (hub.log.find((e) => e.from === 'a')!.message as { i: string }).i;
  b.join('g', 'b1');
  // a asks for a sync in the same turn as the join, before the join's delta is sent.
  b.receive({ t: 'syncreq', n: 'a', i: incarnation });
  await settle();
  assert.deepEqual(a.members('g').map((m) => m.id), ['b1']);
  await hub.close();
});

test('scope node — a node restarted under the same name replaces its old members at once', async () => {
  const hub = new Hub();
  const a = hub.add('a');
  const old = hub.add('b');
  old.join('g', 'x');
  old.join('g', 'y');
  await waitFor(() => a.members('g').length === 2, () => 'a sees x and y');
  old.halt();
  const fresh = hub.add('b');
  fresh.join('g', 'z');
  await waitFor(() => a.members('g').map((m) => m.id).join() === 'z', () => `a sees ${a.members('g').map((m) => m.id)}`, TEST_TIMING.heartbeatMs!);
  await hub.close();
});

test('scope node — an older sync and a goodbye\'s stragglers change nothing', async () => {
  const events: DiscoveryEventKind[] = [];
  const hub = new Hub();
  const a = hub.add('a', (kind) => events.push(kind));
  a.receive({ t: 'sync', n: 'b', i: 'b-1', s: 2, g: { g: [['new', 1, {}]] } });
  a.receive({ t: 'sync', n: 'b', i: 'b-1', s: 1, g: { g: [['old', 1, {}]] } });
  assert.deepEqual(a.members('g').map((m) => m.id), ['new']);
  a.receive({ t: 'delta', n: 'b', i: 'b-1', s: 2, ops: [{ op: 'join', group: 'g', id: 'again', data: {} }] });
  assert.deepEqual(a.members('g').map((m) => m.id), ['new']);
  a.receive({ t: 'bye', n: 'b', i: 'b-1' });
  assert.deepEqual(a.members('g'), []);
  a.receive({ t: 'hb', n: 'b', i: 'b-1', s: 2 });
  a.receive({ t: 'delta', n: 'b', i: 'b-1', s: 3, ops: [{ op: 'join', group: 'g', id: 'late', data: {} }] });
  assert.deepEqual(a.members('g'), []);
  assert.deepEqual(a.nodes().map((n) => n.name), ['a']);
  assert.deepEqual(events, ['node_up', 'join', 'sync', 'leave', 'node_down']);
  await hub.close();
});

test('scope node — a stalled event loop does not drop peers whose heartbeats wait unread', async () => {
  const events: DiscoveryEventKind[] = [];
  const hub = new Hub();
  hub.add('a', (kind) => events.push(kind));
  hub.add('b');
  await settle();
  const until = Date.now() + 2 * TEST_TIMING.downAfterMs!;
  while (Date.now() < until) {
    // Busy: no timer, no I/O.
  }
  await new Promise((resolve) => setTimeout(resolve, 3 * TEST_TIMING.heartbeatMs!));
  assert.deepEqual(events.filter((kind) => kind === 'node_down'), []);
  await hub.close();
});
