// Discovery: the conformance suite on the in-memory network and on NATS (a real nats-server,
// each node on its own connection through its own cut proxy), and what only NATS can get wrong.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { MemoryNetwork, NatsDiscovery, scopeSubject, type DiscoveryEventKind, type DiscoveryScope } from '../src/discovery/index.js';
import { startCutProxy, startNatsServer, type CutProxy, type NatsServer } from '../src/testing/index.js';
import { runDiscoveryConformance, TEST_TIMING, waitFor, type DiscoveryFixture } from './discovery-conformance.js';

runDiscoveryConformance({
  name: 'memory',
  createFixture: async (): Promise<DiscoveryFixture> => {
    const network = new MemoryNetwork();
    const scopes: DiscoveryScope[] = [];
    return {
      node: async (name, timing) => {
        const scope = network.scope(name, { timing });
        scopes.push(scope);
        return scope;
      },
      kill: async (name) => network.kill(name),
      cut: async (name) => network.cut(name),
      heal: async (name) => network.heal(name),
      close: async () => {
        await Promise.all(scopes.map((s) => s.close()));
      },
    };
  },
});

let server: NatsServer;
let scopeCount = 0;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server?.close();
});

interface NatsNode {
  proxy: CutProxy;
  nc: NatsConnection;
  scope: DiscoveryScope;
}

async function natsNode(name: string, scope: string, onEvent?: (kind: DiscoveryEventKind) => void): Promise<NatsNode> {
  const proxy = await startCutProxy(server.port);
  const nc = await connect({
    servers: proxy.url,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 50,
    reconnectJitter: 0,
  });
  return { proxy, nc, scope: await NatsDiscovery.start(nc, { scope, node: name, timing: TEST_TIMING, onEvent }) };
}

async function closeNode(node: NatsNode): Promise<void> {
  await node.scope.close();
  await node.nc.close();
  await node.proxy.close();
}

runDiscoveryConformance({
  name: 'NATS',
  createFixture: async (): Promise<DiscoveryFixture> => {
    const scope = `conformance-${++scopeCount}`;
    const nodes = new Map<string, NatsNode>();
    const get = (name: string): NatsNode => {
      const node = nodes.get(name);
      assert.ok(node, `no node ${name}`);
      return node;
    };
    return {
      node: async (name) => {
        const node = await natsNode(name, scope);
        nodes.set(name, node);
        return node.scope;
      },
      kill: async (name) => {
        const node = get(name);
        nodes.delete(name);
        // The connection goes first, so the goodbye that close() would send reaches no one.
        node.proxy.cut();
        await node.nc.close();
        await node.scope.close();
        await node.proxy.close();
      },
      cut: async (name) => get(name).proxy.cut(),
      heal: async (name) => get(name).proxy.heal(),
      close: async () => {
        await Promise.all([...nodes.values()].map(closeNode));
      },
    };
  },
});

describe('NATS discovery', () => {
  const open: NatsNode[] = [];
  after(async () => {
    await Promise.all(open.map(closeNode));
  });

  test('NATS discovery — malformed messages are counted and ignored', async () => {
    const counts = new Map<DiscoveryEventKind, number>();
    const a = await natsNode('a', 'malformed', (kind) => counts.set(kind, (counts.get(kind) ?? 0) + 1));
    const b = await natsNode('b', 'malformed');
    open.push(a, b);
    b.scope.join('g', 'b1');
    await waitFor(() => a.scope.members('g').length === 1, () => 'a sees b1');
    const all = `${scopeSubject('malformed')}.all`;
    for (const junk of ['not json', '{}', '{"t":"hb","n":"x"}', '{"t":"delta","n":"x","i":"1","s":1,"ops":[{"op":"join"}]}', '[1,2]']) {
      b.nc.publish(all, junk);
    }
    b.nc.publish(`${scopeSubject('malformed')}.node.a`, '{"t":"sync","n":"x","i":"1","s":0,"g":{"g":[["", 1, {}]]}}');
    await waitFor(() => counts.get('malformed') === 6, () => `malformed counted ${counts.get('malformed') ?? 0}`);
    b.scope.join('g', 'b2');
    await waitFor(() => a.scope.members('g').length === 2, () => 'a sees b2 after the junk');
    assert.ok((counts.get('node_up') ?? 0) >= 1);
    assert.ok((counts.get('join') ?? 0) >= 2);
    assert.ok((counts.get('sync') ?? 0) >= 1);
  });

  test('NATS discovery — a disconnect shorter than the drop time loses no change', async () => {
    const a = await natsNode('a', 'lost');
    const b = await natsNode('b', 'lost');
    open.push(a, b);
    b.scope.join('g', 'b1');
    await waitFor(() => a.scope.members('g').length === 1, () => 'a sees b1');
    // a is away for less than the drop time: b's delta meanwhile is lost to it, b is not dropped.
    a.proxy.cut();
    b.scope.join('g', 'b2');
    await new Promise((resolve) => setTimeout(resolve, 30));
    a.proxy.heal();
    await waitFor(() => a.scope.members('g').length === 2, () => 'a sees b2', 2000);
  });

  test('NATS discovery — scopes are independent', async () => {
    const a = await natsNode('a', 'one');
    const b = await natsNode('b', 'two');
    open.push(a, b);
    a.scope.join('g', 'a1');
    b.scope.join('g', 'b1');
    await new Promise((resolve) => setTimeout(resolve, 3 * TEST_TIMING.heartbeatMs!));
    assert.deepEqual(a.scope.members('g').map((m) => m.id), ['a1']);
    assert.deepEqual(b.scope.nodes().map((n) => n.name), ['b']);
  });
});
