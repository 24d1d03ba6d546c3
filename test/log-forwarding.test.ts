// Forwarding function logs: to a NATS subject on a real nats-server, through a bounded queue a slow or lost sink cannot block.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { FunctionLogs, natsLogSink, type LogLine, type LogSink } from '../src/observability/index.js';
import { startNatsServer, type NatsServer } from '../src/testing/index.js';

async function until(check: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A sink whose sends wait until released, recording what reached it. */
function gatedSink(): { sink: LogSink; received: LogLine[]; release(): void } {
  let open: () => void = () => {};
  let gate = new Promise<void>((resolve) => (open = resolve));
  const received: LogLine[] = [];
  return {
    received,
    release: () => {
      open();
      gate = Promise.resolve();
    },
    sink: {
      name: 'slow',
      async send(lines) {
        await gate;
        received.push(...lines);
      },
    },
  };
}

describe('log forwarding', () => {
  let server: NatsServer;
  const connections: NatsConnection[] = [];

  before(async () => {
    server = await startNatsServer();
  });
  after(async () => {
    for (const nc of connections) await nc.close().catch(() => {});
    await server.close();
  });

  test('log forwarding — lines go to lamplighter.logs.<function> as JSON with the node name', async () => {
    const publisher = await connect({ servers: server.url });
    const subscriber = await connect({ servers: server.url });
    connections.push(publisher, subscriber);
    const got: Array<{ subject: string; body: LogLine & { node: string } }> = [];
    const sub = subscriber.subscribe('lamplighter.logs.>', {
      callback: (_err, msg) => {
        got.push({ subject: msg.subject, body: msg.json() });
      },
    });
    await subscriber.flush();
    const logs = new FunctionLogs();
    const stop = logs.forward(natsLogSink(publisher, { node: 'node-a' }));
    logs.write('hello', 'stdout', 'one\ntwo');
    logs.write('other-fn', 'stderr', 'three');
    await until(() => got.length === 3, () => JSON.stringify(got));
    assert.deepEqual(
      got.map((m) => [m.subject, m.body.function, m.body.stream, m.body.text, m.body.node]),
      [
        ['lamplighter.logs.hello', 'hello', 'stdout', 'one', 'node-a'],
        ['lamplighter.logs.hello', 'hello', 'stdout', 'two', 'node-a'],
        ['lamplighter.logs.other-fn', 'other-fn', 'stderr', 'three', 'node-a'],
      ],
    );
    assert.equal(typeof got[0]!.body.time, 'number');
    await stop();
    logs.write('hello', 'stdout', 'after the stop');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(got.length, 3, 'nothing forwarded once stopped');
    sub.unsubscribe();
    await logs.close();
  });

  test('log forwarding — a slow sink never makes write() wait; past the buffer lines are dropped, counted and noted once', async () => {
    const dropped = new Map<string, number>();
    const notices: string[] = [];
    const logs = new FunctionLogs({
      events: {
        dropped: (fn, sink, count) => dropped.set(`${fn}/${sink}`, (dropped.get(`${fn}/${sink}`) ?? 0) + count),
        notice: (_level, _fields, message) => notices.push(message),
      },
    });
    const slow = gatedSink();
    const stop = logs.forward(slow.sink, { bufferLines: 50, batchLines: 10 });
    logs.write('busy', 'stdout', 'first');
    await new Promise((resolve) => setImmediate(resolve)); // the first batch is in flight, held by the sink
    const started = performance.now();
    for (let i = 0; i < 1000; i++) logs.write('busy', 'stdout', `line ${i}`);
    const ms = performance.now() - started;
    assert.ok(ms < 200, `1,000 writes with the sink stalled took ${ms.toFixed(1)} ms`);
    assert.equal(dropped.get('busy/slow'), 950, 'the buffer holds 50; the rest are counted');
    assert.equal(notices.filter((n) => /dropped on the way to slow/.test(n)).length, 1, notices.join('\n'));
    slow.release();
    await stop();
    assert.equal(slow.received.length, 51, 'what the buffer held reaches the sink');
    assert.deepEqual(slow.received.slice(0, 2).map((l) => l.text), ['first', 'line 0']);
    await logs.close();
  });

  test('log forwarding — with the NATS server gone, lines are dropped and counted instead of piling up', async () => {
    const publisher = await connect({ servers: server.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    connections.push(publisher);
    const dropped: number[] = [];
    const failures: string[] = [];
    const logs = new FunctionLogs({
      events: {
        dropped: (_fn, sink, count) => sink === 'nats' && dropped.push(count),
        notice: (_level, _fields, message) => failures.push(message),
      },
    });
    const stop = logs.forward(natsLogSink(publisher), { bufferLines: 20 });
    await server.kill();
    try {
      const started = performance.now();
      for (let i = 0; i < 200; i++) logs.write('lost', 'stdout', `line ${i}`);
      assert.ok(performance.now() - started < 200, 'writing does not wait for NATS');
      // 20 are queued, the rest dropped at once; the 20 go when their flush fails.
      await until(() => dropped.reduce((a, b) => a + b, 0) === 200, () => `dropped ${dropped.join('+')}`);
      // Written while the server is still away, over several failed flushes: never handed to the client.
      const published = publisher.stats().outMsgs;
      for (let i = 0; i < 10; i++) {
        logs.write('lost', 'stdout', `later ${i}`);
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
      await until(() => dropped.reduce((a, b) => a + b, 0) === 210, () => `dropped ${dropped.join('+')}`);
      assert.equal(publisher.stats().outMsgs, published, 'nothing published into the client\'s buffer during the outage');
    } finally {
      await server.restart();
    }
    const subscriber = await connect({ servers: server.url });
    connections.push(subscriber);
    const got: string[] = [];
    subscriber.subscribe('lamplighter.logs.lost', {
      callback: (_err, msg) => {
        got.push((msg.json() as LogLine).text);
      },
    });
    await subscriber.flush();
    // Once the connection is back, new lines flow again.
    await until(
      () => {
        logs.write('lost', 'stdout', 'back');
        return got.includes('back');
      },
      () => `got ${got.join(',')}; notices ${failures.join(' | ')}`,
      15_000,
    );
    assert.ok(!got.some((t) => t.startsWith('later')), `lines dropped during the outage were not published for later: ${got.join(',')}`);
    await stop();
    await logs.close();
  });
});
