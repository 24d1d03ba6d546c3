// KEDA external scaler on a real node: the figures come from the scaler's live demand on a WAGI function.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { externalScalerProtoPath, type KedaServer } from '../src/keda/index.js';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

type Unary<Req, Res> = (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => void;
interface ScalerClient extends grpc.Client {
  IsActive: Unary<{ name: string; namespace: string }, { result: boolean }>;
  GetMetricSpec: Unary<{ name: string; namespace: string }, { metricSpecs: Array<{ metricName: string; targetSizeFloat: number }> }>;
  GetMetrics: Unary<{ scaledObjectRef: { name: string; namespace: string }; metricName: string }, { metricValues: Array<{ metricName: string; metricValueFloat: number }> }>;
}

function call<Req, Res>(fn: Unary<Req, Res>, client: ScalerClient, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res))));
}

describe('keda scaler on a node', () => {
  let node: TestNode;
  let keda: KedaServer;
  let client: ScalerClient;

  before(async () => {
    node = await startTestNode({ scaleIntervalMs: 50 });
    await node.deploy(wagiApp('slow', 'slow', 'slow.wasm', ['/slow'], '[function.scale]\ntarget = 2\nidle = "500ms"\nwindow = "2s"'), { 'slow.wasm': wagiFixture('slow') });
    keda = await node.platform.startKeda(0, '127.0.0.1');
    const definition = protoLoader.loadSync(externalScalerProtoPath(), { keepCase: false, defaults: true });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as { externalscaler: { ExternalScaler: new (addr: string, creds: grpc.ChannelCredentials) => ScalerClient } };
    client = new pkg.externalscaler.ExternalScaler(`127.0.0.1:${keda.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await keda.close();
    await node.close();
  });

  const ref = { name: 'slow', namespace: 'default' };

  test('keda scaler on a node — an idle function is inactive and its target is scale.target', async () => {
    assert.equal((await call(client.IsActive, client, ref)).result, false);
    const spec = await call(client.GetMetricSpec, client, ref);
    assert.equal(spec.metricSpecs[0]!.targetSizeFloat, 2);
    assert.equal(spec.metricSpecs[0]!.metricName, 'lamplighter-slow-concurrency');
  });

  test('keda scaler on a node — load makes it active with the time-weighted concurrency, idle makes it inactive', async () => {
    const load = Promise.all(Array.from({ length: 6 }, () => fetch(`${node.url}/slow?ms=400`).then((r) => r.text())));
    await new Promise((r) => setTimeout(r, 250));
    assert.equal((await call(client.IsActive, client, ref)).result, true);
    const metrics = await call(client.GetMetrics, client, { scaledObjectRef: ref, metricName: 'lamplighter-slow-concurrency' });
    assert.ok(metrics.metricValues[0]!.metricValueFloat > 0, JSON.stringify(metrics));
    await load;
    const until = Date.now() + 5000;
    let active = true;
    while (active && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      active = (await call(client.IsActive, client, ref)).result;
    }
    assert.equal(active, false);
  });

  test('keda scaler on a node — an unknown function is NOT_FOUND', async () => {
    await assert.rejects(call(client.IsActive, client, { name: 'nope', namespace: 'default' }), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND);
  });
});
