// Breakers across the cluster: three nodes in one process over a real nats-server, each with its own
// connection, discovery scope, gate and ClusterBreakers, driven with requests and outcomes directly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { breakerSubject, ownerOf } from '../src/breaker-cluster/index.js';
import { startCutProxy, startNatsServer, type NatsServer } from '../src/testing/index.js';
import { createBreakerGate } from '../src/admission/breaker/index.js';
import { breakerSpec, FAIL, OK, tenant, ticket } from './breaker-helpers.js';
import { admits, groupNodes, startBreakerNode, stateOf, stopBreakerNode, serve, type BreakerNode } from './breaker-cluster-helpers.js';
import { waitFor } from './discovery-conformance.js';

// min_requests 10: five failures on one node open nothing there; fifteen over three nodes do.
const SPEC = 'failure_ratio = 0.5\nwindow = "5s"\nmin_requests = 10\nconsecutive_failures = 0\nopen_for = "1s"\nhalf_open_probes = 1';

let server: NatsServer;
let scopes = 0;
const started: BreakerNode[] = [];

before(async () => {
  server = await startNatsServer();
});
after(async () => {
  for (const node of started) await stopBreakerNode(node);
  await server?.close();
});

/** Three nodes in a scope of their own, each seeing all three in the group of `f`. */
async function threeNodes(lines = SPEC): Promise<BreakerNode[]> {
  const scope = `breakers-${++scopes}`;
  const nodes: BreakerNode[] = [];
  for (const name of ['n1', 'n2', 'n3']) {
    const node = await startBreakerNode(server.url, scope, name, lines);
    nodes.push(node);
    started.push(node);
  }
  await waitFor(
    () => nodes.every((n) => groupNodes(n).length === 3),
    () => nodes.map((n) => `${n.name} sees ${groupNodes(n).join(',')}`).join('; '),
  );
  return nodes;
}

/** Fails `key` five times on each node and waits until every node has it open; ms it took. */
async function openEverywhere(nodes: BreakerNode[], key: string): Promise<number> {
  const start = Date.now();
  for (const n of nodes) serve(n, key, 5, FAIL);
  for (const n of nodes) assert.equal(stateOf(n, key), 'closed', `${n.name}: five failures are under min_requests here`);
  await waitFor(
    () => nodes.every((n) => stateOf(n, key) === 'open'),
    () => nodes.map((n) => `${n.name}: ${stateOf(n, key)}`).join(', '),
    2000,
  );
  return Date.now() - start;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('breaker cluster', () => {
  test('breaker cluster — failures of key a on all three nodes open a on all three within 2 s; b keeps being served', async () => {
    const nodes = await threeNodes();
    for (const n of nodes) serve(n, 'b', 5, OK);
    const took = await openEverywhere(nodes, 'a');
    assert.ok(took < 2000, `took ${took} ms`);
    for (const n of nodes) {
      assert.equal(admits(n, 'a'), false, `${n.name} refuses a`);
      assert.equal(admits(n, 'b'), true, `${n.name} serves b`);
      assert.equal(stateOf(n, 'b'), 'closed');
      assert.equal(n.cluster.decision('f', 'a')?.state, 'open');
      assert.equal(n.cluster.decision('f', 'b'), undefined);
    }
    // Every node applied the same decision: the one of a's owner.
    const owner = ownerOf(groupNodes(nodes[0]!), 'f', 'a');
    for (const n of nodes) assert.equal(n.cluster.decision('f', 'a')?.epoch[2], owner);
    const received = nodes.reduce((sum, n) => sum + (n.cluster.stats().report_received ?? 0), 0);
    assert.ok(received < 200, `reports are batched per interval, not per request: ${received}`);
  });

  test('breaker cluster — failures seen by one node alone open its own breaker only', async () => {
    const nodes = await threeNodes();
    const [alone, other1, other2] = nodes as [BreakerNode, BreakerNode, BreakerNode];
    serve(alone, 'a', 10, FAIL);
    serve(other1, 'a', 3, OK);
    serve(other2, 'a', 3, OK);
    assert.equal(stateOf(alone, 'a'), 'open', 'ten failures open it by the local thresholds');
    // Ten report rounds: ample time for the owner to have judged, had it been going to open it.
    await sleep(500);
    assert.equal(stateOf(other1, 'a'), 'closed');
    assert.equal(stateOf(other2, 'a'), 'closed');
    assert.equal(admits(other1, 'a'), true);
    assert.equal(admits(other2, 'a'), true);
    assert.equal(admits(alone, 'a'), false);
    for (const n of nodes) assert.equal(n.cluster.decision('f', 'a'), undefined, `${n.name} knows no cluster decision on a`);
  });

  test('breaker cluster — a half-open probe that succeeds closes it everywhere; one that fails reopens it everywhere', async () => {
    const nodes = await threeNodes();
    const [n1, n2, n3] = nodes as [BreakerNode, BreakerNode, BreakerNode];
    await openEverywhere(nodes, 'a');
    const firstEpoch = n1.cluster.decision('f', 'a')!.epoch;
    // Past open_for, n2's breaker is half-open and lets one probe through; it fails.
    await waitFor(() => n2.cluster.decision('f', 'a')!.leftMs === 0, () => 'open_for never ran out', 2000);
    ticket(n2.gate.admit(tenant('a'))).done(FAIL);
    await waitFor(
      () => nodes.every((n) => n.cluster.decision('f', 'a')!.epoch[0] > firstEpoch[0] || n.cluster.decision('f', 'a')!.epoch[1] > firstEpoch[1]),
      () => nodes.map((n) => `${n.name}: ${JSON.stringify(n.cluster.decision('f', 'a'))}`).join(', '),
      2000,
    );
    for (const n of nodes) {
      assert.equal(n.cluster.decision('f', 'a')!.state, 'open');
      assert.ok(n.cluster.decision('f', 'a')!.leftMs > 500, `${n.name} reopened for open_for`);
      assert.equal(admits(n, 'a'), false, `${n.name} refuses a again`);
    }
    // Next time, n3's probe succeeds: a closes on all three, the others without a probe of their own.
    await waitFor(() => n3.cluster.decision('f', 'a')!.leftMs === 0, () => 'open_for never ran out', 2000);
    const probedAt = Date.now();
    ticket(n3.gate.admit(tenant('a'))).done(OK);
    assert.equal(stateOf(n3, 'a'), 'closed');
    await waitFor(
      () => nodes.every((n) => n.cluster.decision('f', 'a')?.state === 'closed' && stateOf(n, 'a') === 'closed'),
      () => nodes.map((n) => `${n.name}: ${stateOf(n, 'a')} ${JSON.stringify(n.cluster.decision('f', 'a'))}`).join(', '),
      2000,
    );
    // Well before a half-open breaker nobody probes would close on its own (open_for later).
    assert.ok(Date.now() - probedAt < 800, `closed ${Date.now() - probedAt} ms after the probe`);
    for (const n of nodes) assert.equal(admits(n, 'a'), true, `${n.name} serves a`);
  });

  test('breaker cluster — when the owner of a is killed, the remaining two judge a (its successor owns it)', async () => {
    const nodes = await threeNodes();
    const owner = ownerOf(groupNodes(nodes[0]!), 'f', 'a')!;
    const dead = nodes.find((n) => n.name === owner)!;
    const survivors = nodes.filter((n) => n !== dead);
    // The cluster at work first: the owner hears from both others about a.
    for (const n of nodes) serve(n, 'a', 2, OK);
    await waitFor(() => (dead.cluster.stats().report_received ?? 0) >= 4, () => `the owner received ${JSON.stringify(dead.cluster.stats())}`);
    await stopBreakerNode(dead);
    await waitFor(
      () => survivors.every((n) => groupNodes(n).length === 2),
      () => survivors.map((n) => `${n.name} sees ${groupNodes(n).join(',')}`).join('; '),
    );
    const successor = ownerOf(groupNodes(survivors[0]!), 'f', 'a');
    // Six failures each: under min_requests on either node alone, over it summed.
    for (const n of survivors) serve(n, 'a', 6, FAIL);
    await waitFor(
      () => survivors.every((n) => stateOf(n, 'a') === 'open'),
      () => survivors.map((n) => `${n.name}: ${stateOf(n, 'a')}`).join(', '),
      2000,
    );
    for (const n of survivors) {
      assert.equal(n.cluster.decision('f', 'a')?.epoch[2], successor);
      assert.equal(admits(n, 'a'), false);
    }
  });

  test('breaker cluster — an open decision whose owner died expires by its TTL, and the key is judged locally again', async () => {
    const nodes = await threeNodes();
    await openEverywhere(nodes, 'a');
    const openedAt = Date.now();
    const owner = ownerOf(groupNodes(nodes[0]!), 'f', 'a')!;
    const dead = nodes.find((n) => n.name === owner)!;
    const survivors = nodes.filter((n) => n !== dead);
    const expiresIn = survivors[0]!.cluster.decision('f', 'a')!.expiresInMs;
    assert.ok(expiresIn > 1000 && expiresIn <= 1300, `open_for + margin: ${expiresIn}`);
    await stopBreakerNode(dead);
    await waitFor(
      () => survivors.every((n) => n.cluster.decision('f', 'a') === undefined),
      () => survivors.map((n) => `${n.name}: ${JSON.stringify(n.cluster.decision('f', 'a'))}`).join(', '),
      3000,
    );
    const expiredAfter = Date.now() - openedAt;
    assert.ok(expiredAfter >= 1000, `not before open_for: ${expiredAfter} ms`);
    // Nothing holds a open now: each survivor's own half-open probe closes it there.
    for (const n of survivors) {
      assert.equal(admits(n, 'a'), true, `${n.name} lets a probe through`);
      assert.equal(stateOf(n, 'a'), 'closed');
    }
  });

  test('breaker cluster — bad and foreign messages are counted and dropped; close() stops the timer and subscriptions', async () => {
    const scope = `breakers-${++scopes}`;
    const node = await startBreakerNode(server.url, scope, 'n1', SPEC);
    started.push(node);
    const base = breakerSubject(scope);
    const inbox = `${base}.node.n1`;
    const decisions = `${base}.fn.f`;
    const report = { v: 1, kind: 'report', fn: 'f', from: 'n9', bucketMs: node.gate.bucketMs, base: 0, keys: [['a', null, [[0, 1, 1]]]] };
    const decision = { v: 1, kind: 'decision', fn: 'f', from: 'n9', decisions: [{ key: 'a', epoch: [Date.now() + 60_000, 0, 'n9'], state: 'open', leftMs: 60_000 }] };
    const publish = (subject: string, value: unknown): void => node.nc.publish(subject, typeof value === 'string' ? value : JSON.stringify(value));
    publish(inbox, 'not json');
    publish(inbox, { ...report, keys: [['a', null, [[0, 1, 5]]]] });
    node.nc.publish(inbox, new Uint8Array([0xff, 0x00]));
    publish(inbox, { ...report, fn: 'other' });
    publish(inbox, { ...report, bucketMs: 7 });
    publish(inbox, decision);
    publish(decisions, report);
    publish(decisions, { ...decision, fn: 'other' });
    await node.nc.flush();
    await waitFor(
      () => node.cluster.stats().malformed === 3 && node.cluster.stats().foreign === 5,
      () => JSON.stringify(node.cluster.stats()),
    );
    assert.equal(stateOf(node, 'a'), 'none', 'no decision came on the right subject');
    assert.equal(admits(node, 'a'), true);
    // Closed: it leaves the group and hears nothing more, not even a valid decision.
    node.cluster.close();
    assert.deepEqual(groupNodes(node), []);
    const stats = JSON.stringify(node.cluster.stats());
    publish(decisions, decision);
    publish(inbox, 'not json');
    await node.nc.flush();
    await sleep(150);
    assert.equal(JSON.stringify(node.cluster.stats()), stats);
    assert.equal(stateOf(node, 'a'), 'closed');
    assert.equal(node.cluster.decision('f', 'a'), undefined);
  });

  test("breaker cluster — a revision's gate closing detaches it; a newer one attached first keeps the node in the group", async () => {
    const scope = `breakers-${++scopes}`;
    const node = await startBreakerNode(server.url, scope, 'n1', SPEC);
    started.push(node);
    const newer = createBreakerGate(breakerSpec(`partition = "header:x-tenant"\n${SPEC}`), { sweepIntervalMs: 0 })!;
    node.cluster.attach(newer);
    node.gate.close();
    assert.deepEqual(groupNodes(node), ['n1'], 'the newer revision still serves f');
    // Decisions now reach the newer gate only.
    const decision = { v: 1, kind: 'decision', fn: 'f', from: 'n9', decisions: [{ key: 'a', epoch: [Date.now(), 0, 'n9'], state: 'open', leftMs: 60_000 }] };
    node.nc.publish(`${breakerSubject(scope)}.fn.f`, JSON.stringify(decision));
    await waitFor(() => newer.counts('a')?.state === 'open', () => `newer: ${newer.counts('a')?.state}`);
    newer.close();
    assert.deepEqual(groupNodes(node), [], 'no revision left: the node leaves the group');
    assert.equal(node.cluster.decision('f', 'a'), undefined);
  });

  test('breaker cluster — a node cut off decides alone; back, it gets the decisions it missed', async () => {
    const scope = `breakers-${++scopes}`;
    const proxy = await startCutProxy(server.port);
    try {
      const n1 = await startBreakerNode(server.url, scope, 'n1', SPEC);
      const n2 = await startBreakerNode(server.url, scope, 'n2', SPEC);
      const n3 = await startBreakerNode(proxy.url, scope, 'n3', SPEC);
      started.push(n1, n2, n3);
      const nodes = [n1, n2, n3];
      await waitFor(() => nodes.every((n) => groupNodes(n).length === 3), () => nodes.map((n) => `${n.name} sees ${groupNodes(n).join(',')}`).join('; '));
      proxy.cut();
      await waitFor(
        () => groupNodes(n1).length === 2 && groupNodes(n2).length === 2 && groupNodes(n3).length === 1,
        () => nodes.map((n) => `${n.name} sees ${groupNodes(n).join(',')}`).join('; '),
      );
      // The two still together open a key that n3 owns once back; n3 knows nothing of it...
      const a = ['a', 'b', 'c', 'd', 'e', 'g', 'h', 'i'].find((k) => ownerOf(['n1', 'n2', 'n3'], 'f', k) === 'n3')!;
      serve(n1, a, 6, FAIL);
      serve(n2, a, 6, FAIL);
      await waitFor(() => stateOf(n1, a) === 'open' && stateOf(n2, a) === 'open', () => `${stateOf(n1, a)} ${stateOf(n2, a)}`, 2000);
      assert.equal(admits(n3, a), true);
      // ...and decides alone on its own thresholds: one reporter never makes a quorum.
      serve(n3, 'solo', 10, FAIL);
      assert.equal(stateOf(n3, 'solo'), 'open');
      assert.equal(n3.cluster.decision('f', 'solo'), undefined);
      proxy.heal();
      // Back, n3 owns that key, and hears of the decision from the node that took it.
      await waitFor(() => stateOf(n3, a) === 'open', () => `n3: ${stateOf(n3, a)}; ${JSON.stringify(n3.cluster.stats())}`, 3000);
      assert.deepEqual(n3.cluster.decision('f', a)?.epoch, n1.cluster.decision('f', a)?.epoch);
      assert.equal(stateOf(n1, 'solo'), 'none', "n3's own breaker stayed its own");
    } finally {
      await proxy.close();
    }
  });
});
