// Partition keys: what each [function.breaker].partition reads from a request.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createBreakerGate, MAX_KEY_LENGTH } from '../src/admission/breaker/index.js';
import { breakerSpec, request } from './breaker-helpers.js';

const keyOf = (partition: string) => createBreakerGate(breakerSpec(`partition = "${partition}"`), { sweepIntervalMs: 0 })!.keyOf;

describe('breaker partition', () => {
  test('breaker partition — "none" gives every request one key', () => {
    const key = keyOf('none');
    assert.equal(key(request({ url: '/a', remoteAddress: '10.0.0.1' })), key(request({ url: '/b', remoteAddress: '10.0.0.2' })));
  });

  test('breaker partition — "client" is the peer address, or the last x-forwarded-for entry of a forwarded request', () => {
    const key = keyOf('client');
    assert.equal(key(request({ remoteAddress: '10.0.0.7' })), '10.0.0.7');
    assert.equal(key(request({ remoteAddress: '10.0.0.7', headers: { 'x-forwarded-for': '6.6.6.6' } })), '10.0.0.7', 'a client cannot name itself');
    assert.equal(key(request({ remoteAddress: '10.0.0.2', forwardedBy: 'node-1', headers: { 'x-forwarded-for': '6.6.6.6, 192.0.2.9' } })), '192.0.2.9');
    assert.equal(key(request({ remoteAddress: '10.0.0.2', forwardedBy: 'node-1' })), '10.0.0.2');
  });

  test('breaker partition — "path" is the path without its query', () => {
    const key = keyOf('path');
    assert.equal(key(request({ url: '/orders/7?full=1' })), '/orders/7');
    assert.equal(key(request({ url: '/orders/7' })), '/orders/7');
  });

  test('breaker partition — "header:NAME" is the header\'s value (its name matched lower-cased), empty when absent', () => {
    const key = keyOf('header:X-Tenant');
    assert.equal(key(request({ headers: { 'x-tenant': 'acme' } })), 'acme');
    assert.equal(key(request({ headers: { 'x-tenant': ['a', 'b'] } })), 'a');
    assert.equal(key(request()), '');
  });

  test('breaker partition — a key past MAX_KEY_LENGTH is held cut to that length, and found again', () => {
    const gate = createBreakerGate(breakerSpec('partition = "header:x-tenant"\nconsecutive_failures = 2'), { sweepIntervalMs: 0 })!;
    const long = 'k'.repeat(10_000);
    for (let i = 0; i < 2; i++) {
      const t = gate.admit(request({ headers: { 'x-tenant': long } }));
      assert.ok(!(t instanceof Error));
      t.done({ status: 500, durationMs: 1 });
    }
    assert.equal(gate.size, 1);
    const held = gate.counts(long.slice(0, MAX_KEY_LENGTH));
    assert.equal(held?.key.length, MAX_KEY_LENGTH);
    assert.equal(held?.state, 'open');
    gate.close();
  });
});
