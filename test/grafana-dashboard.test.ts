// The Grafana dashboard in docs/ names only metrics a node exposes, so it cannot drift from them.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot, startTestNode, type TestNode } from '../src/testing/index.js';

let node: TestNode;
before(async () => {
  node = await startTestNode({ tracing: { url: 'http://127.0.0.1:9/v1/traces' } });
});
after(() => node?.close());

interface Dashboard {
  title: string;
  panels: Array<{ title: string; targets: Array<{ expr: string }>; gridPos: { x: number; y: number; w: number; h: number } }>;
  templating: { list: Array<{ name: string }> };
}

test('grafana dashboard — every metric it queries is one a node exposes; panels do not overlap', async () => {
  const dashboard = JSON.parse(await readFile(path.join(repoRoot, 'docs', 'grafana', 'lamplighter.json'), 'utf8')) as Dashboard;
  assert.equal(dashboard.title, 'Lamplighter');
  assert.deepEqual(dashboard.templating.list.map((v) => v.name), ['datasource', 'function']);
  const exposed = new Set([...(await (await fetch(`${node.adminUrl}/metrics`)).text()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
  const queried = new Set<string>();
  for (const panel of dashboard.panels) {
    assert.ok(panel.targets.length > 0, `${panel.title} has a query`);
    for (const target of panel.targets) for (const m of target.expr.matchAll(/\blamplighter_[a-z_]+/g)) queried.add(m[0]);
  }
  const missing = [...queried].filter((name) => !exposed.has(name) && !exposed.has(name.replace(/_(bucket|count|sum)$/, '')));
  assert.deepEqual(missing, [], 'queried metrics the node does not expose');
  for (const wanted of ['lamplighter_function_cpu_seconds_total', 'lamplighter_function_memory_bytes', 'lamplighter_instance_start_seconds_bucket', 'lamplighter_cold_start_wait_seconds_bucket']) {
    assert.ok(queried.has(wanted), `the dashboard shows ${wanted}`);
  }
  const cells = new Set<string>();
  for (const { gridPos: g, title } of dashboard.panels) {
    for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
      assert.ok(!cells.has(`${x},${y}`), `${title} overlaps another panel`);
      cells.add(`${x},${y}`);
    }
  }
});
