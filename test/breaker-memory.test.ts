// Bounded memory: a flood of distinct partition keys cannot grow a function's breakers past max_keys.
import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, test } from 'node:test';
import { createBreakerGate } from '../src/admission/breaker/index.js';
import { BreakerDefaults } from '../src/manifest/index.js';
import { breakerSpec, OK, FAIL, tenant, TestClock, ticket } from './breaker-helpers.js';

/** A full collection, when it can be had: from --expose-gc, or by turning the flag on now. */
function collector(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

// A partition's window lives in a typed array, whose bytes V8 keeps outside the heap proper.
function heapAfterGc(gc: () => void): number {
  gc();
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

describe('breaker memory', () => {
  test('breaker memory — 100,000 distinct keys hold max_keys partitions and the heap stops growing', () => {
    const gc = collector();
    const empty = gc ? heapAfterGc(gc) : 0;
    const clock = new TestClock();
    const gate = createBreakerGate(breakerSpec('partition = "header:x-tenant"\nconsecutive_failures = 1'), { clock: clock.read, sweepIntervalMs: 0 })!;
    const maxKeys = BreakerDefaults.maxKeys;
    const send = (from: number, to: number): void => {
      for (let i = from; i < to; i++) {
        // One key in a thousand fails: some partitions are open and must survive the flood.
        ticket(gate.admit(tenant(`tenant-${i}-${'x'.repeat(40)}`))).done(i % 1000 === 0 && i < maxKeys ? FAIL : OK);
      }
    };
    send(0, maxKeys);
    assert.equal(gate.size, maxKeys);
    const full = gc ? heapAfterGc(gc) : 0;
    if (gc) assert.ok(full - empty > maxKeys * 200, 'the measure sees the partitions held (else it would prove nothing)');
    send(maxKeys, 100_000);
    assert.equal(gate.size, maxKeys, 'partitions held stay at max_keys');
    assert.equal(gate.openCount(), 10, 'the open partitions were never forgotten');
    assert.equal(gate.counts(`tenant-1000-${'x'.repeat(40)}`)?.state, 'open');
    assert.equal(gate.counts(`tenant-1-${'x'.repeat(40)}`), undefined, 'an old closed one was');
    assert.equal(gate.counts(`tenant-99999-${'x'.repeat(40)}`)?.state, 'closed');
    if (gc) {
      // Unbounded, 90,000 more partitions would take some 60 MiB (a partition is about 700 bytes).
      const growth = heapAfterGc(gc) - full;
      assert.ok(growth < 4 * 1024 * 1024, `heap grew by ${(growth / 1024 / 1024).toFixed(1)} MiB after max_keys was reached`);
    }
    gate.close();
  });
});
