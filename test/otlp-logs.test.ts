// Function output sent on as OTLP log records to an in-test collector; a failing or stalled
// collector costs dropped, counted lines, never a slow request.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { otlpHeaders, otlpLogsEndpoint } from '../src/observability/index.js';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';
import { tracingFromEnvironment } from '../src/tracing/index.js';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: { resourceLogs: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue: string } }> }; scopeLogs: Array<{ logRecords: Array<Record<string, unknown>> }> }> };
}

/** An OTLP/HTTP collector of our own: keeps what it is sent; `mode` says how it answers. */
function collector(): { url: () => string; received: Received[]; mode: { answer: 'ok' | 'fail' | 'stall' }; close: () => Promise<void>; server: http.Server } {
  const received: Received[] = [];
  const mode = { answer: 'ok' as 'ok' | 'fail' | 'stall' };
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      if (mode.answer === 'stall') return;
      received.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(text) as Received['body'] });
      res.writeHead(mode.answer === 'ok' ? 200 : 503, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return {
    server,
    url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    mode,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('function logs to OTLP', () => {
  const otlp = collector();
  let node: TestNode;
  let closed = false;

  before(async () => {
    await new Promise<void>((resolve) => otlp.server.listen(0, '127.0.0.1', resolve));
    node = await startTestNode({ nodeName: 'node-x', otlpEndpoint: otlp.url() });
    await node.deploy(wagiApp('trap', 'trap', 'trap.wasm', ['/trap']), { 'trap.wasm': wagiFixture('trap') });
  });
  after(async () => {
    if (!closed) await node.close();
    await otlp.close();
  });

  test('otlp logs — a function\'s stderr line arrives as a log record with its function, stream and node', async () => {
    assert.equal((await fetch(`${node.url}/trap`)).status, 500);
    const record = async (): Promise<Record<string, unknown> | undefined> =>
      otlp.received.flatMap((r) => r.body.resourceLogs.flatMap((l) => l.scopeLogs.flatMap((s) => s.logRecords))).find((rec) => (rec.body as { stringValue: string }).stringValue === 'about to trap');
    await until('the record', async () => (await record()) !== undefined);
    const first = otlp.received[0]!;
    assert.equal(first.path, '/v1/logs');
    assert.equal(first.headers['content-type'], 'application/json');
    const resource = Object.fromEntries(first.body.resourceLogs[0]!.resource.attributes.map((a) => [a.key, a.value.stringValue]));
    assert.deepEqual(resource, { 'service.name': 'lamplighter', 'service.instance.id': 'node-x' });
    const rec = (await record())!;
    assert.equal(rec.severityText, 'WARN');
    assert.equal(rec.severityNumber, 13);
    assert.match(String(rec.timeUnixNano), /^\d{19}$/);
    const attributes = Object.fromEntries((rec.attributes as Array<{ key: string; value: { stringValue: string } }>).map((a) => [a.key, a.value.stringValue]));
    assert.deepEqual(attributes, { 'faas.name': 'trap', 'log.iostream': 'stderr' });
  });

  test('otlp logs — a failing collector drops and counts lines; a stalled one never slows a request', async () => {
    otlp.mode.answer = 'fail';
    assert.equal((await fetch(`${node.url}/trap`)).status, 500);
    await until('a drop counted', async () => /^lamplighter_log_lines_dropped_total\{function="trap",sink="otlp"\} [1-9]/m.test(await (await fetch(`${node.adminUrl}/metrics`)).text()));
    otlp.mode.answer = 'stall';
    const started = performance.now();
    for (let i = 0; i < 20; i++) assert.equal((await fetch(`${node.url}/trap`)).status, 500);
    const perRequest = (performance.now() - started) / 20;
    assert.ok(perRequest < 500, `${perRequest.toFixed(0)} ms a request while the collector stalls`);
    // Nor its shutdown: the forwarder gives the collector 2 s, then drops what is left.
    const closing = performance.now();
    closed = true;
    await node.close();
    const took = performance.now() - closing;
    assert.ok(took < 4_000, `closed in ${took.toFixed(0)} ms with the collector stalled`);
  });
});

test('otlp logs — the endpoint and headers come from OpenTelemetry\'s environment variables', () => {
  assert.equal(otlpLogsEndpoint(undefined, {}), undefined);
  assert.equal(otlpLogsEndpoint(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }), 'http://c:4318/v1/logs');
  assert.equal(otlpLogsEndpoint('http://flag:4318', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), 'http://flag:4318/v1/logs');
  assert.equal(otlpLogsEndpoint(undefined, { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://l:1/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), 'http://l:1/custom');
  assert.equal(otlpLogsEndpoint(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_LOGS_EXPORTER: 'none' }), undefined);
  assert.equal(otlpLogsEndpoint(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }), undefined);
  assert.throws(() => otlpLogsEndpoint(undefined, { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'collector:4318' }), /OTEL_EXPORTER_OTLP_LOGS_ENDPOINT must be an http/);
  assert.deepEqual(otlpHeaders({ OTEL_EXPORTER_OTLP_HEADERS: 'api-key=a%20b, x=1,bad' }), { 'api-key': 'a b', x: '1' });
  assert.deepEqual(otlpHeaders({ OTEL_EXPORTER_OTLP_HEADERS: 'api-key=general,x=1', OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'api-key=logs' }), { 'api-key': 'logs', x: '1' }, 'the logs\' own headers over the general ones');
});

test('otlp logs — the endpoint follows the same rule as traces (regression: the logs variable beat the flag, and OTEL_SDK_DISABLED was ignored)', () => {
  // `expected` is the logs URL, as OpenTelemetry's own rule gives it; traces get /v1/traces where logs get /v1/logs.
  const cases: Array<{ flag?: string; env: Record<string, string>; expected: string | undefined }> = [
    { env: {}, expected: undefined },
    { flag: 'http://flag:4318', env: {}, expected: 'http://flag:4318/v1/logs' },
    { flag: 'http://flag:4318/', env: { OTEL_EXPORTER_OTLP_SIGNAL_ENDPOINT: 'http://own:1/x', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, expected: 'http://flag:4318/v1/logs' },
    { flag: 'http://flag:4318', env: { OTEL_SIGNAL_EXPORTER: 'none', OTEL_SDK_DISABLED: 'true' }, expected: 'http://flag:4318/v1/logs' },
    { env: { OTEL_EXPORTER_OTLP_SIGNAL_ENDPOINT: ' http://own:1/x ', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, expected: 'http://own:1/x' },
    { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c:4318/base' }, expected: 'https://c:4318/base/v1/logs' },
    { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SIGNAL_EXPORTER: ' NONE ' }, expected: undefined },
    { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' }, expected: undefined },
  ];
  const as = (env: Record<string, string>, signal: string): Record<string, string> =>
    Object.fromEntries(Object.entries(env).map(([name, value]) => [name.replace('SIGNAL', signal), value]));
  for (const { flag, env, expected } of cases) {
    const where = `flag ${flag ?? '(none)'}, ${JSON.stringify(env)}`;
    const traces = tracingFromEnvironment(flag, as(env, 'TRACES'))?.url;
    assert.equal(otlpLogsEndpoint(flag, as(env, 'LOGS')), expected, where);
    assert.equal(traces, expected?.replace('/v1/logs', '/v1/traces'), where);
  }
  assert.equal(otlpLogsEndpoint('http://flag:4318', { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://own:1/x' }), 'http://flag:4318/v1/logs');
});
