// The parts of the breaker protocol that need no network: owner choice, epochs, the owner's tally, decoding, decision order.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createBreakerGate } from '../src/admission/breaker/index.js';
import { ownerOf } from '../src/breaker-cluster/index.js';
import { compareEpochs, nextEpoch, type Epoch } from '../src/breaker-cluster/decision-epoch.js';
import { FunctionCluster, type ClusterLink } from '../src/breaker-cluster/function-cluster.js';
import { OwnerLedger, type JudgeRule } from '../src/breaker-cluster/owner-ledger.js';
import { decodeMessage, encodeMessage, WIRE_VERSION, type DecisionMessage, type ProbeMessage, type ReportMessage } from '../src/breaker-cluster/wire.js';
import { breakerSpec, FAIL, OK, tenant, TestClock, ticket } from './breaker-helpers.js';

describe('breaker cluster parts', () => {
  test('key owner — every node computes the same owner; a node leaving moves only its own keys', () => {
    const nodes = ['n1', 'n2', 'n3', 'n4'];
    const keys = Array.from({ length: 2000 }, (_, i) => `tenant-${i}`);
    const before = new Map(keys.map((k) => [k, ownerOf(nodes, 'f', k)!]));
    assert.deepEqual(new Map(keys.map((k) => [k, ownerOf([...nodes].reverse(), 'f', k)!])), before, 'order of the names does not matter');
    const share = (node: string): number => keys.filter((k) => before.get(k) === node).length;
    for (const n of nodes) assert.ok(share(n) > 350 && share(n) < 650, `${n} owns ${share(n)} of 2000`);
    const after = new Map(keys.map((k) => [k, ownerOf(['n1', 'n2', 'n4'], 'f', k)!]));
    const heirs = new Set<string>();
    for (const k of keys) {
      if (before.get(k) !== 'n3') assert.equal(after.get(k), before.get(k), `${k} stays where it was`);
      else {
        assert.ok(['n1', 'n2', 'n4'].includes(after.get(k)!), `${k} moves to a node still there, not ${after.get(k)}`);
        heirs.add(after.get(k)!);
      }
    }
    assert.ok(heirs.size > 1, "n3's keys spread over the nodes left, not onto one");
    assert.equal(ownerOf([], 'f', 'a'), undefined);
    assert.notDeepEqual(keys.map((k) => ownerOf(nodes, 'f', k)), keys.map((k) => ownerOf(nodes, 'g', k)), 'each function spreads its keys differently');
  });

  test('decision epoch — ordered by time, then sequence, then node; a successor behind in time still comes after', () => {
    assert.ok(compareEpochs([5, 0, 'b'], [4, 9, 'z']) > 0);
    assert.ok(compareEpochs([5, 1, 'a'], [5, 0, 'z']) > 0);
    assert.ok(compareEpochs([5, 1, 'b'], [5, 1, 'a']) > 0);
    assert.equal(compareEpochs([5, 1, 'a'], [5, 1, 'a']), 0);
    assert.ok(compareEpochs(null, [0, 0, 'a']) < 0);
    const seen: Epoch = [1000, 3, 'old-owner'];
    const next = nextEpoch(seen, 900, 'successor');
    assert.deepEqual(next, [1000, 4, 'successor']);
    assert.ok(compareEpochs(next, seen) > 0);
    assert.deepEqual(nextEpoch(seen, 2000, 'successor'), [2000, 0, 'successor']);
    assert.deepEqual(nextEpoch(undefined, 7, 'n'), [7, 0, 'n']);
  });

  test('owner ledger — sums the window over nodes; opens only with a quorum of failing nodes', () => {
    const rule: JudgeRule = { bucketMs: 100, minRequests: 10, failureRatio: 0.5, quorum: undefined };
    const ledger = new OwnerLedger(100);
    const now = 10_000;
    ledger.record('n1', { key: 'a', epoch: null, buckets: [[9_900, 12, 12]] });
    assert.deepEqual(ledger.tally('a', now, rule), { requests: 12, failures: 12, reporters: 1, failingNodes: 1, required: 2, opens: false });
    ledger.record('n2', { key: 'a', epoch: null, buckets: [[10_000, 4, 0]] });
    ledger.record('n3', { key: 'a', epoch: null, buckets: [[10_000, 4, 0]] });
    assert.equal(ledger.tally('a', now, rule)!.opens, false, 'one failing node of three');
    ledger.record('n3', { key: 'a', epoch: null, buckets: [[10_000, 4, 3]] });
    assert.deepEqual(ledger.tally('a', now, rule), { requests: 20, failures: 15, reporters: 3, failingNodes: 2, required: 2, opens: true });
    assert.equal(ledger.tally('a', now, { ...rule, quorum: 3 })!.opens, false, 'an explicit quorum of 3');
    assert.equal(ledger.tally('a', now + 1000, rule)!.requests, 0, 'buckets a window old no longer count');
    // A decision restarts the counts: reports from before it (an older epoch) are dropped.
    ledger.restart('a', [10_000, 0, 'n1']);
    assert.equal(ledger.record('n2', { key: 'a', epoch: null, buckets: [[10_000, 9, 9]] }), false);
    assert.equal(ledger.record('n2', { key: 'a', epoch: [10_000, 0, 'n1'], buckets: [[10_000, 1, 0]] }), true);
    assert.equal(ledger.tally('a', now, rule)!.requests, 1);
    // Bounded: past maxKeys a new key is dropped.
    const small = new OwnerLedger(2);
    assert.equal(small.record('n1', { key: 'x', epoch: null, buckets: [] }), true);
    assert.equal(small.record('n1', { key: 'y', epoch: null, buckets: [] }), true);
    assert.equal(small.record('n1', { key: 'z', epoch: null, buckets: [] }), false);
    small.prune(now, 100, () => false);
    assert.equal(small.size, 0, 'keys with no report in the window and no live decision go');
  });

  test('wire — messages round-trip; anything else decodes to undefined, never throws', () => {
    const report: ReportMessage = { v: WIRE_VERSION, kind: 'report', fn: 'f', from: 'n1', bucketMs: 100, keys: [{ key: 'a', epoch: [1, 0, 'n2'], buckets: [[100, 3, 1]] }] };
    const probe: ProbeMessage = { v: WIRE_VERSION, kind: 'probe', fn: 'f', from: 'n1', key: 'a', epoch: [1, 0, 'n2'], passed: true };
    const decision: DecisionMessage = { v: WIRE_VERSION, kind: 'decision', fn: 'f', from: 'n2', decisions: [{ key: 'a', epoch: [1, 0, 'n2'], state: 'open', leftMs: 500 }] };
    for (const m of [report, probe, decision]) assert.deepEqual(decodeMessage(encodeMessage(m)), m);
    // A report goes compact: bucket starts as ages back from the newest bucket.
    const compact = { v: WIRE_VERSION, kind: 'report', fn: 'f', from: 'n1', bucketMs: 100, base: 7, keys: [['a', null, [[0, 3, 1], [2, 4, 0]]]] };
    assert.deepEqual(JSON.parse(new TextDecoder().decode(encodeMessage({ ...report, keys: [{ key: 'a', epoch: null, buckets: [[700, 3, 1], [500, 4, 0]] }] }))), compact);
    assert.deepEqual(decodeMessage(new TextEncoder().encode(JSON.stringify(compact)))!, { ...report, keys: [{ key: 'a', epoch: null, buckets: [[700, 3, 1], [500, 4, 0]] }] });
    const bad: unknown[] = [
      'not json',
      null,
      [],
      { ...compact, v: 2 },
      { ...compact, kind: 'gossip' },
      { ...compact, fn: '' },
      { ...compact, bucketMs: -1 },
      { ...compact, base: 1.5 },
      { ...compact, keys: [{ key: 'a', epoch: null, buckets: [] }] },
      { ...compact, keys: [['a', null, [[0, 1, 2]]]] },
      { ...compact, keys: [['a', null, [[8, 1, 0]]]] },
      { ...compact, keys: [['a', null, [[64, 1, 0]]]], base: 100 },
      { ...compact, keys: [['a', [1, 0], []]] },
      { ...compact, keys: [['a'.repeat(300), null, []]] },
      { ...compact, keys: Array.from({ length: 501 }, () => ['a', null, []]) },
      { ...probe, epoch: [1, 0] },
      { ...probe, passed: 'yes' },
      { ...decision, decisions: [{ key: 'a', epoch: [1, 0, 'n2'], state: 'ajar', leftMs: 1 }] },
      { ...decision, decisions: [{ key: 'a', epoch: [1, 0, 'n2'], state: 'open', leftMs: Number.NaN }] },
    ];
    for (const value of bad) {
      const data = typeof value === 'string' ? new TextEncoder().encode(value) : new TextEncoder().encode(JSON.stringify(value));
      assert.equal(decodeMessage(data), undefined, JSON.stringify(value)?.slice(0, 80));
    }
    assert.equal(decodeMessage(new Uint8Array([0xff, 0xfe, 0x7b])), undefined, 'not UTF-8');
  });

  test('function cluster — only a newer epoch applies, whoever sent it; probes under it go to the owner', async () => {
    const clock = new TestClock();
    const gate = createBreakerGate(breakerSpec('partition = "header:x-tenant"\nopen_for = "10s"'), { clock: clock.read, sweepIntervalMs: 0 })!;
    const sent: unknown[] = [];
    const link: ClusterLink = { node: 'n1', nodes: () => ['n1', 'n2'], send: (_n, m) => sent.push(m), broadcast: (m) => sent.push(m), count: () => {} };
    const cluster = new FunctionCluster('f', link, { marginMs: 1000, refreshMs: 1000 }, clock.read);
    cluster.add(gate);
    const decide = (epoch: Epoch, state: 'open' | 'closed', leftMs = 0): void =>
      cluster.receiveDecisions({ v: WIRE_VERSION, kind: 'decision', fn: 'f', from: epoch[2], decisions: [{ key: 'a', epoch, state, leftMs }] });
    const t = clock.now;
    decide([t, 1, 'n2'], 'open', 5000);
    assert.equal(gate.counts('a')?.state, 'open', 'a key never seen here opens too');
    assert.equal(gate.openKeys()[0]?.retryAfterMs, 5000, 'for the time the owner has left');
    decide([t, 0, 'n3'], 'closed');
    assert.equal(gate.counts('a')?.state, 'open', 'an older epoch is ignored');
    decide([t, 1, 'n2'], 'closed');
    assert.equal(gate.counts('a')?.state, 'open', 'the same epoch is a repeat');
    decide([t + 1, 0, 'n3'], 'closed');
    assert.equal(gate.counts('a')?.state, 'closed', 'a newer one applies, whoever sent it');
    // Expired: past open time plus margin the node forgets the decision.
    decide([t + 2, 0, 'n2'], 'open', 5000);
    clock.advance(5999);
    assert.equal(cluster.decision('a')?.state, 'open');
    clock.advance(1);
    assert.equal(cluster.decision('a'), undefined);
    // A probe under a live open decision is passed on to the key's owner; one of a breaker this node opened alone is not.
    clock.advance(10_000);
    for (let i = 0; i < 10; i++) ticket(gate.admit(tenant('solo'))).done(FAIL);
    assert.equal(gate.counts('solo')?.state, 'open');
    clock.advance(10_000);
    const remote = ['k1', 'k2', 'k3', 'k4', 'k5'].find((k) => ownerOf(['n1', 'n2'], 'f', k) === 'n2')!;
    const epoch: Epoch = [clock.now, 0, 'n2'];
    cluster.receiveDecisions({ v: WIRE_VERSION, kind: 'decision', fn: 'f', from: 'n2', decisions: [{ key: remote, epoch, state: 'open', leftMs: 100 }] });
    clock.advance(200);
    sent.length = 0;
    ticket(gate.admit(tenant('solo'))).done(FAIL);
    for (let i = 0; i < 3; i++) ticket(gate.admit(tenant(remote))).done(OK);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sent, [{ v: WIRE_VERSION, kind: 'probe', fn: 'f', from: 'n1', key: remote, epoch, passed: true }]);
    cluster.close();
    gate.close();
  });
});
