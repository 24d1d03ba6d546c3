// `lamplighter up` with tracing: --otlp-endpoint and OTEL_EXPORTER_OTLP_ENDPOINT turn it on, SIGTERM sends the last spans.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CliProcess, HELLO_DIR, killAllChildren, runCli } from './cli-helpers.js';
import { startOtlpReceiver, type OtlpReceiver } from './tracing-helpers.js';

let receiver: OtlpReceiver;
before(async () => {
  receiver = await startOtlpReceiver();
});
after(async () => {
  killAllChildren();
  await receiver.close();
});

async function serveOnce(args: string[], env: Record<string, string | undefined>, path: string): Promise<{ requestId: string; up: CliProcess }> {
  const up = new CliProcess(['up', HELLO_DIR, '--port', '0', '--admin-port', '0', '--workers', '1', ...args], { env });
  const [, gateway] = await up.waitForOutput(/Serving app 'hello' on (http:\/\/127\.0\.0\.1:\d+)/);
  const res = await fetch(`${gateway}${path}`);
  assert.equal(res.status, 200);
  await res.text();
  return { requestId: res.headers.get('x-request-id')!, up };
}

test('tracing cli — up --otlp-endpoint exports the spans of a request, the last ones on SIGTERM', async () => {
  const { requestId, up } = await serveOnce(['--otlp-endpoint', receiver.url], { OTEL_SERVICE_NAME: 'edge-a', OTEL_EXPORTER_OTLP_ENDPOINT: undefined }, '/hello/cli');
  // Stopped at once: the span is still queued (sent every second), and must go out as the node closes.
  const exit = await up.stop('SIGTERM', 8000);
  assert.equal(exit.code, 0, up.stderr);
  const server = receiver.spans.find((s) => s.attributes['lamplighter.request_id'] === requestId);
  assert.ok(server, `the request's server span arrived before the node exited; got ${receiver.spans.map((s) => s.name).join(', ')}`);
  assert.equal(server.name, 'GET /hello/...');
  assert.equal(server.resource['service.name'], 'edge-a');
  assert.ok(receiver.spans.some((s) => s.traceId === server.traceId && s.name === 'run in sandbox'));
});

test('tracing cli — OTEL_EXPORTER_OTLP_ENDPOINT turns tracing on without the flag', async () => {
  const { requestId, up } = await serveOnce([], { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: undefined }, '/hello/env');
  await up.stop('SIGTERM', 8000);
  const server = receiver.spans.find((s) => s.attributes['lamplighter.request_id'] === requestId);
  assert.ok(server, 'the span arrived');
  assert.equal(server.resource['service.name'], 'lamplighter');
});

test('tracing cli — an --otlp-endpoint that is not a URL stops up with the reason', async () => {
  const result = await runCli(['up', HELLO_DIR, '--port', '0', '--admin-port', '0', '--otlp-endpoint', 'localhost:4318'], { timeoutMs: 15_000 });
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /Invalid otlp_endpoint from --otlp-endpoint: expected an http:\/\/ or https:\/\/ URL, like http:\/\/localhost:4318, got 'localhost:4318'/);
});
