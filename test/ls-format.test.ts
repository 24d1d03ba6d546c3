// What `ls` prints for a cluster view, rendered from plain values (no node needed), and for a lone node.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatAge, formatApps, formatListing, formatPlacement } from '../src/cli/ls-format.js';
import type { ClusterView } from '../src/cluster/index.js';
import type { AppStatus, FunctionStatus } from '../src/control/index.js';

const NOW = Date.parse('2026-12-02T12:00:00.000Z');

/** An ISO time `ms` before NOW. */
function ago(ms: number): string {
  return new Date(NOW - ms).toISOString();
}

function fn(name: string, app: string, instances: number): FunctionStatus {
  return {
    name,
    app,
    runtime: 'wagi',
    routes: [`/${name}`],
    instances,
    ready: instances,
    pending: 0,
    inFlight: 0,
    status: instances > 0 ? 'lit' : 'idle',
    lastFailure: undefined,
    scale: { min: 0, max: 10, idleMs: 30_000, target: 1, rate: undefined, windowMs: 60_000 },
    limits: {} as FunctionStatus['limits'],
  };
}

const APPS: AppStatus[] = [
  { name: 'shop', revision: 3, createdAt: ago(60_000), functions: [fn('cart', 'shop', 2), fn('search', 'shop', 0)] },
];

const CLUSTER: ClusterView = {
  mode: 'cluster',
  node: 'node-b',
  nodes: [
    { name: 'node-c', address: '10.0.0.3:8080', healthy: false, lastHeartbeat: ago(5_140), self: false, draining: false },
    { name: 'node-a', address: '10.0.0.1:8080', healthy: true, lastHeartbeat: ago(400), self: false, draining: false },
    { name: 'node-b', address: '10.0.0.2:8080', healthy: true, lastHeartbeat: ago(120), self: true, draining: false },
    { name: 'node-d', address: undefined, healthy: false, lastHeartbeat: ago(1_200), self: false, draining: true },
  ],
  functions: [
    {
      name: 'cart',
      max: 10,
      instances: [
        { node: 'node-b', id: 'i3', free: 1 },
        { node: 'node-a', id: 'i1', free: 0 },
        { node: 'node-a', id: 'i2', free: 1 },
      ],
    },
    { name: 'search', max: 4, instances: [] },
  ],
};

describe('ls format', () => {
  test('ls format — a cluster view: nodes first (this node marked), then the apps, then where instances run', () => {
    assert.equal(
      formatListing(APPS, CLUSTER, NOW),
      [
        'NODE                ADDRESS        STATE     LAST HEARTBEAT',
        'node-a              10.0.0.1:8080  healthy   0.4s ago',
        'node-b (this node)  10.0.0.2:8080  healthy   0.1s ago',
        'node-c              10.0.0.3:8080  down      5.1s ago',
        'node-d              -              draining  1.2s ago',
        '',
        'APP   REV  FUNCTION  RUNTIME  INSTANCES  PENDING  STATUS  ROUTES',
        'shop  3    cart      wagi     2          0        lit     /cart',
        'shop  3    search    wagi     0          0        idle    /search',
        '',
        'FUNCTION  MAX  INSTANCES',
        'cart      10   3 instances: node-a 2, node-b 1',
        'search    4    0 instances',
      ].join('\n'),
    );
  });

  test('ls format — a cluster with no apps still shows its nodes', () => {
    const out = formatListing([], { ...CLUSTER, functions: [] }, NOW);
    assert.match(out, /^NODE\s+ADDRESS\s+STATE\s+LAST HEARTBEAT\n/);
    assert.match(out, /\n\nNo apps deployed\.$/);
  });

  test('ls format — an embedded node prints its apps exactly as a lone node always has', () => {
    const embedded: ClusterView = {
      mode: 'embedded',
      node: 'solo',
      nodes: [{ name: 'solo', address: '127.0.0.1:8080', healthy: true, lastHeartbeat: ago(0), self: true, draining: false }],
      functions: [{ name: 'cart', max: 10, instances: [{ node: 'solo', id: 'i1', free: 1 }] }],
    };
    assert.equal(formatListing(APPS, embedded, NOW), formatApps(APPS));
    assert.equal(formatListing(APPS, undefined, NOW), formatApps(APPS));
    assert.equal(formatListing([], embedded, NOW), 'No apps deployed.');
    assert.doesNotMatch(formatListing(APPS, embedded, NOW), /NODE|this node/);
  });

  test('ls format — one instance is singular', () => {
    assert.equal(formatPlacement({ name: 'f', max: 1, instances: [{ node: 'n', id: 'i', free: 0 }] }), '1 instance: n 1');
  });

  test('ls format — heartbeat ages in tenths under a minute, then minutes, hours and days', () => {
    const cases: Array<[number, string]> = [
      [0, '0.0s ago'],
      [40, '0.0s ago'],
      [449, '0.4s ago'],
      [12_345, '12.3s ago'],
      [59_949, '59.9s ago'],
      [59_950, '1m00s ago'],
      [125_000, '2m05s ago'],
      [3_599_000, '59m59s ago'],
      [3 * 3_600_000 + 7 * 60_000, '3h07m ago'],
      [2 * 86_400_000 + 4 * 3_600_000, '2d04h ago'],
      // A peer's clock a little ahead of ours.
      [-800, '0.0s ago'],
    ];
    for (const [ms, text] of cases) assert.equal(formatAge(ago(ms), NOW), text, `${ms} ms`);
    assert.equal(formatAge('not a time', NOW), '-');
  });
});
