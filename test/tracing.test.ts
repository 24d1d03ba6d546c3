// End-to-end: request traces exported over OTLP/HTTP to an in-test receiver — WAGI, process, cold starts, failures, a full queue.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { repoRoot, startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';
import { createLogger, Metrics } from '../src/observability/index.js';
import { RequestTracer, tracingFromEnvironment } from '../src/tracing/index.js';
import { clientTraceparent, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './tracing-helpers.js';

const ECHO = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');
const SERVER = 2;
const INTERNAL = 1;
const CLIENT = 3;
const ERROR = 2;

function processApp(app: string, fn: string, route: string, extra = ''): string {
  return `name = "${app}"\n[[function]]\nname = "${fn}"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nroutes = ["${route}"]\nready = "/healthz"\n${extra}\n`;
}

/** The spans of one trace, once `count` of them have arrived. */
async function traceSpans(receiver: OtlpReceiver, traceId: string, count: number): Promise<ReceivedSpan[]> {
  const until = Date.now() + 5000;
  for (;;) {
    const spans = receiver.spans.filter((s) => s.traceId === traceId);
    if (spans.length >= count) return spans;
    if (Date.now() > until) throw new Error(`trace ${traceId}: ${spans.length} of ${count} spans (${spans.map((s) => s.name).join(', ')})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function only(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((s) => s.name === name);
  assert.equal(found.length, 1, `one span named '${name}' in ${spans.map((s) => s.name).join(', ')}`);
  return found[0]!;
}

async function metricValues(node: TestNode, name: string): Promise<Array<{ labels: Record<string, string | number>; value: number }>> {
  const metric = node.platform.metrics.registry.getSingleMetric(name);
  assert.ok(metric, `metric ${name} is registered`);
  return (await metric.get()).values as Array<{ labels: Record<string, string | number>; value: number }>;
}

describe('tracing — spans of each request, exported over OTLP/HTTP', () => {
  let receiver: OtlpReceiver;
  let node: TestNode;
  before(async () => {
    receiver = await startOtlpReceiver();
    node = await startTestNode({ nodeName: 'node-a', tracing: { url: `${receiver.url}/v1/traces`, scheduledDelayMs: 20 } });
    await node.deploy(wagiApp('envdump', 'env', 'env.wasm', ['/env/...']), { 'env.wasm': wagiFixture('env') });
    await node.deploy(wagiApp('trap', 'trap', 'trap.wasm', ['/trap']), { 'trap.wasm': wagiFixture('trap') });
    await node.deploy(processApp('echo', 'echo', '/p/...', '[function.env]\nPATH_PREFIX = "/p"\n[function.scale]\nidle = "30s"'), { 'echo-server.mjs': ECHO });
  });
  after(async () => {
    await node.close();
    await receiver.close();
  });

  test('tracing — a WAGI request: a server span with the HTTP attributes, its run in the sandbox a child, HTTP_TRACEPARENT naming the run', async () => {
    const client = clientTraceparent();
    const res = await fetch(`${node.url}/env/here?q=1`, { headers: { traceparent: client.header, tracestate: 'vendor=abc' } });
    assert.equal(res.status, 200);
    const text = await res.text();
    const spans = await traceSpans(receiver, client.traceId, 2);
    const server = only(spans, 'GET /env/...');
    assert.equal(server.kind, SERVER);
    // The client's span is the server span's parent: the trace goes on where the client left it.
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(server.attributes['http.request.method'], 'GET');
    assert.equal(server.attributes['http.route'], '/env/...');
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['url.path'], '/env/here');
    assert.equal(server.attributes['url.scheme'], 'http');
    assert.equal(server.attributes['server.address'], '127.0.0.1');
    assert.equal(server.attributes['server.port'], node.platform.port);
    assert.equal(server.attributes['lamplighter.function'], 'env');
    assert.equal(server.attributes['lamplighter.request_id'], res.headers.get('x-request-id'));
    assert.equal(server.attributes['error.type'], undefined);
    assert.equal(server.resource['service.name'], 'lamplighter');
    assert.equal(server.resource['lamplighter.node'], 'node-a');
    const run = only(spans, 'run in sandbox');
    assert.equal(run.kind, INTERNAL);
    assert.equal(run.parentSpanId, server.spanId);
    assert.equal(run.attributes['lamplighter.runtime'], 'wagi');
    assert.match(String(run.attributes['lamplighter.instance']), /^env-\d+$/);
    // The module sees the run's span, not the client's, as its parent; the tracestate passes as it came.
    const sent = /^ENV HTTP_TRACEPARENT=(.*)$/m.exec(text)?.[1];
    assert.equal(sent, `00-${client.traceId}-${run.spanId}-01`);
    assert.notEqual(run.spanId, client.spanId);
    assert.equal((text.match(/^ENV HTTP_TRACEPARENT=/gm) ?? []).length, 1);
    assert.match(text, /^ENV HTTP_TRACESTATE=vendor=abc$/m);
  });

  test('tracing — a request without a traceparent starts a trace of its own', async () => {
    const before = receiver.spans.length;
    const res = await fetch(`${node.url}/env/root`);
    await res.text();
    const server = await receiver.waitFor((s) => receiver.spans.indexOf(s) >= before && s.name === 'GET /env/...');
    assert.equal(server.parentSpanId, undefined);
    assert.match(server.traceId, /^[0-9a-f]{32}$/);
  });

  test('tracing — a process request at zero: the wait for an instance is marked cold, the proxied call carries its traceparent', async () => {
    assert.equal(node.platform.group('echo')!.instanceCount, 0);
    const client = clientTraceparent();
    const res = await fetch(`${node.url}/p/_/headers`, { headers: { traceparent: client.header } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-lamplighter-cold-start'), 'true');
    const seen = (await res.json()) as Record<string, string>;
    const spans = await traceSpans(receiver, client.traceId, 3);
    const server = only(spans, 'GET /p/...');
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(server.attributes['lamplighter.cold_start'], true);
    assert.equal(server.attributes['http.response.status_code'], 200);
    const wait = only(spans, 'wait for instance');
    assert.equal(wait.parentSpanId, server.spanId);
    assert.equal(wait.attributes['lamplighter.cold_start'], true);
    const call = only(spans, 'run in process');
    assert.equal(call.kind, CLIENT);
    assert.equal(call.parentSpanId, server.spanId);
    assert.equal(call.attributes['lamplighter.runtime'], 'process');
    assert.equal(call.attributes['http.request.method'], 'GET');
    assert.equal(call.attributes['http.response.status_code'], 200);
    assert.equal(call.attributes['server.address'], '127.0.0.1');
    assert.match(String(call.attributes['url.full']), /^http:\/\/127\.0\.0\.1:\d+\/p\/_\/headers$/);
    // The program got the call's span as its parent, in place of the client's header.
    assert.equal(seen.traceparent, `00-${client.traceId}-${call.spanId}-01`);

    // Warm now: no wait, so no wait span.
    const warm = clientTraceparent();
    const again = await fetch(`${node.url}/p/_/headers`, { headers: { traceparent: warm.header } });
    assert.equal(again.headers.get('x-lamplighter-cold-start'), 'false');
    await again.text();
    const warmSpans = await traceSpans(receiver, warm.traceId, 2);
    await node.platform.tracer!.flush();
    assert.deepEqual(receiver.spans.filter((s) => s.traceId === warm.traceId).map((s) => s.name).sort(), ['GET /p/...', 'run in process']);
    assert.equal(only(warmSpans, 'GET /p/...').attributes['lamplighter.cold_start'], undefined);
  });

  test('tracing — a failed request: error.type is the LL_ code on the server span and on the run', async () => {
    const client = clientTraceparent();
    const res = await fetch(`${node.url}/trap`, { headers: { traceparent: client.header } });
    assert.equal(res.status, 500);
    await res.text();
    const spans = await traceSpans(receiver, client.traceId, 2);
    const server = only(spans, 'GET /trap');
    assert.equal(server.attributes['error.type'], 'LL_HANDLER_TRAP');
    assert.equal(server.attributes['http.response.status_code'], 500);
    assert.equal(server.statusCode, ERROR);
    const run = only(spans, 'run in sandbox');
    assert.equal(run.attributes['error.type'], 'LL_HANDLER_TRAP');
    assert.equal(run.statusCode, ERROR);

    const missing = clientTraceparent();
    const notFound = await fetch(`${node.url}/nothing-here`, { headers: { traceparent: missing.header } });
    assert.equal(notFound.status, 404);
    await notFound.text();
    const [unrouted] = await traceSpans(receiver, missing.traceId, 1);
    assert.equal(unrouted!.name, 'GET');
    assert.equal(unrouted!.attributes['error.type'], 'LL_ROUTE_NOT_FOUND');
    assert.equal(unrouted!.attributes['http.response.status_code'], 404);
    assert.equal(unrouted!.attributes['http.route'], undefined);
  });

  test('tracing — an invalid traceparent is ignored: a new trace, and the module gets the run span', async () => {
    const res = await fetch(`${node.url}/env/bad`, { headers: { traceparent: '00-not-a-trace-01' } });
    const text = await res.text();
    const sent = /^ENV HTTP_TRACEPARENT=(.*)$/m.exec(text)?.[1] ?? '';
    const [, traceId, spanId] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(sent) ?? [];
    assert.ok(traceId, `a valid traceparent, got '${sent}'`);
    const spans = await traceSpans(receiver, traceId!, 2);
    assert.equal(only(spans, 'GET /env/...').parentSpanId, undefined);
    assert.equal(only(spans, 'run in sandbox').spanId, spanId);
  });

  test('tracing — the in-process entry traces a request as the socket does', async () => {
    const client = clientTraceparent();
    const res = await node.platform.gateway.handle({ method: 'GET', url: '/env/inproc', headers: { traceparent: client.header, host: 'localhost' } });
    assert.equal(res.status, 200);
    const spans = await traceSpans(receiver, client.traceId, 2);
    const server = only(spans, 'GET /env/...');
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(server.attributes['lamplighter.request_id'], res.headers.get('x-request-id'));
    assert.equal(only(spans, 'run in sandbox').parentSpanId, server.spanId);
  });
});

describe('tracing — the export queue is bounded and never holds a request', () => {
  let receiver: OtlpReceiver;
  let node: TestNode;
  const logLines: string[] = [];
  before(async () => {
    receiver = await startOtlpReceiver();
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logLines.push(line) });
    node = await startTestNode({ logger, tracing: { url: `${receiver.url}/v1/traces`, maxQueueSize: 4, maxExportBatchSize: 2, scheduledDelayMs: 20, exportTimeoutMs: 2000, failureLogIntervalMs: 60_000 } });
    await node.deploy(wagiApp('envdump', 'env', 'env.wasm', ['/env']), { 'env.wasm': wagiFixture('env') });
  });
  after(async () => {
    await node.close();
    await receiver.close();
  });

  test('tracing — a full queue drops spans and counts them; requests are answered meanwhile', async () => {
    // A first request lights the function (its wait is a span too); the count starts after it.
    await (await fetch(`${node.url}/env`)).text();
    await node.platform.tracer!.flush();
    const exportedBefore = (await metricValues(node, 'lamplighter_spans_exported_total'))[0]?.value ?? 0;
    assert.equal(exportedBefore, 3);
    receiver.hold = true;
    const started = performance.now();
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${node.url}/env`);
      assert.equal(res.status, 200);
      await res.text();
    }
    // 24 spans against a queue of 4 and one held export of 2: most are dropped, none waited for.
    assert.ok(performance.now() - started < 5000, 'requests are not held by the export');
    const dropped = await metricValues(node, 'lamplighter_spans_dropped_total');
    const full = dropped.find((v) => v.labels.reason === 'queue_full')?.value ?? 0;
    assert.ok(full >= 12, `at least 12 spans dropped for a full queue, got ${full}`);
    assert.ok(node.platform.tracer!.queued <= 4);
    assert.ok(logLines.some((l) => /dropped because the queue was full/.test(l)), 'the drop is logged');
    receiver.hold = false;
    await node.platform.tracer!.flush();
    const exported = (await metricValues(node, 'lamplighter_spans_exported_total'))[0]?.value ?? 0;
    assert.equal(exported - exportedBefore + full, 24, 'every span is either exported or counted as dropped');
  });
});

describe('tracing — export failures', () => {
  let receiver: OtlpReceiver;
  let node: TestNode;
  const logLines: string[] = [];
  before(async () => {
    receiver = await startOtlpReceiver();
    receiver.failWith = 400;
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logLines.push(line) });
    node = await startTestNode({ logger, tracing: { url: `${receiver.url}/v1/traces`, scheduledDelayMs: 20, failureLogIntervalMs: 60_000 } });
    await node.deploy(wagiApp('envdump', 'env', 'env.wasm', ['/env']), { 'env.wasm': wagiFixture('env') });
  });
  after(async () => {
    await node.close();
    await receiver.close();
  });

  test('tracing — failed exports are counted and logged once per interval, never thrown', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${node.url}/env`);
      assert.equal(res.status, 200);
      await res.text();
      await node.platform.tracer!.flush();
    }
    assert.ok(receiver.requests >= 3);
    const failures = (await metricValues(node, 'lamplighter_span_export_failures_total'))[0]?.value ?? 0;
    assert.ok(failures >= 3, `each failed export counted, got ${failures}`);
    const dropped = await metricValues(node, 'lamplighter_spans_dropped_total');
    assert.ok((dropped.find((v) => v.labels.reason === 'export_failed')?.value ?? 0) >= 6);
    const warnings = logLines.filter((l) => /export request\(s\) to .* failed/.test(l));
    assert.equal(warnings.length, 1, 'one warning for the interval, however many failures');
    assert.match(warnings[0]!, new RegExp(receiver.url.replace(/\./g, '\\.')));
  });
});

describe('tracing — an endpoint that is down', () => {
  test('tracing — requests are served, and closing the node gives up on the queue within its bound, counting what it lost', async () => {
    // A port nothing listens on: every connection is refused, and the exporter keeps retrying.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const logLines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logLines.push(line) });
    const node = await startTestNode({ logger, tracing: { url: `http://127.0.0.1:${port}/v1/traces`, scheduledDelayMs: 20, closeTimeoutMs: 300 } });
    try {
      await node.deploy(wagiApp('envdump', 'env', 'env.wasm', ['/env']), { 'env.wasm': wagiFixture('env') });
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${node.url}/env`);
        assert.equal(res.status, 200);
        await res.text();
      }
    } finally {
      const started = performance.now();
      await node.close();
      assert.ok(performance.now() - started < 2500, `closed in ${(performance.now() - started).toFixed(0)} ms`);
    }
    const dropped = await metricValues(node, 'lamplighter_spans_dropped_total');
    const lost = dropped.reduce((sum, v) => sum + v.value, 0);
    // 5 requests: 5 server spans, 5 runs, 1 wait; each either failed in an export or was still held at close.
    assert.equal(lost, 11, JSON.stringify(dropped));
    assert.ok(logLines.some((l) => /not sent before the node closed|export request\(s\) to .* failed/.test(l)), logLines.join('\n'));
  });
});

describe('tracing — the API a runtime calls (as the component runtime does)', () => {
  let receiver: OtlpReceiver;
  let tracer: RequestTracer;
  before(async () => {
    receiver = await startOtlpReceiver();
    tracer = new RequestTracer({ url: `${receiver.url}/v1/traces`, scheduledDelayMs: 20 }, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), nodeName: 'n1' });
  });
  after(async () => {
    await tracer.close();
    await receiver.close();
  });

  test('tracing api — a run with an outbound call under it: each span a child of the one before, each traceparent its own', async () => {
    const client = clientTraceparent();
    const trace = tracer.startRequest({ method: 'POST', headers: { traceparent: client.header }, host: 'api.example', port: 8080, path: '/c/x', remoteAddress: '10.0.0.1' });
    trace.routed('/c/...', 'comp');
    const run = trace.startRun('component', 'comp-1');
    const call = trace.startCall('GET', 'https://upstream.example/items?id=1', { parent: run });
    assert.match(run.traceparent, new RegExp(`^00-${client.traceId}-[0-9a-f]{16}-01$`));
    assert.notEqual(call.traceparent, run.traceparent);
    call.setStatus(503);
    call.end();
    run.setStatus(200);
    run.end();
    trace.respond(200, false);
    trace.end();
    const spans = await traceSpans(receiver, client.traceId, 3);
    const server = only(spans, 'POST /c/...');
    const runSpan = only(spans, 'run in sandbox');
    const callSpan = only(spans, 'GET');
    assert.equal(runSpan.parentSpanId, server.spanId);
    assert.equal(runSpan.attributes['lamplighter.runtime'], 'component');
    assert.equal(callSpan.parentSpanId, runSpan.spanId);
    assert.equal(callSpan.kind, CLIENT);
    assert.equal(call.traceparent, `00-${client.traceId}-${callSpan.spanId}-01`);
    assert.equal(callSpan.attributes['server.address'], 'upstream.example');
    assert.equal(callSpan.attributes['server.port'], 443);
    assert.equal(callSpan.attributes['url.full'], 'https://upstream.example/items?id=1');
    assert.equal(callSpan.attributes['http.response.status_code'], 503);
    assert.equal(callSpan.attributes['error.type'], '503');
    assert.equal(callSpan.attributes['lamplighter.function'], 'comp');
    assert.equal(server.attributes['server.address'], 'api.example');
    assert.equal(server.attributes['client.address'], '10.0.0.1');
  });

  test('tracing api — a call target that is no URL is traced without one, never thrown', () => {
    const trace = tracer.startRequest({ method: 'OPTIONS', headers: {}, host: 'h', port: 1, path: '*', remoteAddress: '::1' });
    const call = trace.startCall('OPTIONS', 'http://127.0.0.1:4000*', { name: 'run in process' });
    assert.match(call.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    call.end();
    trace.end();
  });

  test('tracing api — an outbound call that fails names the failure in error.type', async () => {
    const trace = tracer.startRequest({ method: 'GET', headers: {}, host: 'h', port: 1, path: '/', remoteAddress: '::1' });
    const call = trace.startCall('GET', 'http://127.0.0.1:9/');
    call.fail('connection-refused');
    call.end();
    trace.end();
    const traceId = call.traceparent.split('-')[1]!;
    const spans = await traceSpans(receiver, traceId, 2);
    const failed = spans.find((s) => s.kind === CLIENT)!;
    assert.equal(failed.attributes['error.type'], 'connection-refused');
    assert.equal(failed.statusCode, ERROR);
  });

  test('tracing api — a client trace that is not sampled is passed on, and nothing is exported', async () => {
    const client = clientTraceparent();
    const unsampled = client.header.replace(/-01$/, '-00');
    const trace = tracer.startRequest({ method: 'GET', headers: { traceparent: unsampled }, host: 'h', port: 1, path: '/', remoteAddress: '::1' });
    const run = trace.startRun('wagi', 'w-1');
    assert.match(run.traceparent, new RegExp(`^00-${client.traceId}-[0-9a-f]{16}-00$`));
    run.end();
    trace.end();
    await tracer.flush();
    assert.equal(receiver.spans.filter((s) => s.traceId === client.traceId).length, 0);
  });
});

describe('tracing — off', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
    await node.deploy(wagiApp('envdump', 'env', 'env.wasm', ['/env']), { 'env.wasm': wagiFixture('env') });
  });
  after(() => node.close());

  test('tracing — off: no tracer, no span metrics, and the client\'s traceparent reaches the module as it was sent', async () => {
    assert.equal(node.platform.tracer, undefined);
    assert.equal(node.platform.metrics.registry.getSingleMetric('lamplighter_spans_dropped_total'), undefined);
    const client = clientTraceparent();
    const text = await (await fetch(`${node.url}/env`, { headers: { traceparent: client.header } })).text();
    assert.match(text, new RegExp(`^ENV HTTP_TRACEPARENT=${client.header}$`, 'm'));
  });
});

describe('tracing — settings from flags and OTEL_* variables', () => {
  test('tracing settings — --otlp-endpoint wins and gets /v1/traces appended', () => {
    assert.deepEqual(tracingFromEnvironment('http://collector:4318', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://other:4318' }), { url: 'http://collector:4318/v1/traces', serviceName: undefined });
    assert.equal(tracingFromEnvironment('http://collector:4318/', {})?.url, 'http://collector:4318/v1/traces');
  });

  test('tracing settings — the traces endpoint is used as it is, before the base endpoint', () => {
    assert.equal(tracingFromEnvironment(undefined, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318' })?.url, 'http://c:4318/custom');
    assert.equal(tracingFromEnvironment(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://b:4318/base' })?.url, 'https://b:4318/base/v1/traces');
    assert.equal(tracingFromEnvironment(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318', OTEL_SERVICE_NAME: 'edge' })?.serviceName, 'edge');
  });

  test('tracing settings — off without an endpoint, or when the variables say so', () => {
    assert.equal(tracingFromEnvironment(undefined, {}), undefined);
    assert.equal(tracingFromEnvironment(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318', OTEL_SDK_DISABLED: 'true' }), undefined);
    assert.equal(tracingFromEnvironment(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318', OTEL_TRACES_EXPORTER: 'none' }), undefined);
  });

  test('tracing settings — a URL that is not http(s) is refused, naming where it came from', () => {
    assert.throws(() => tracingFromEnvironment('collector:4318', {}), /--otlp-endpoint must be an http:\/\/ or https:\/\/ URL.*got 'collector:4318'/);
    assert.throws(() => tracingFromEnvironment(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }), /OTEL_EXPORTER_OTLP_ENDPOINT must be/);
  });
});
