// Differential fuzzing, bounded: 2,000 generated and mutated requests read by the gateway's parser
// and by node's (llhttp); both refuse each, or both read the same request with the same framing.
import { test } from 'node:test';
import { runDifferential } from './request-fuzz.js';

/** A fixed seed by default, so a run is reproducible; FUZZ_SEED picks another. */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_202);

test('request parser fuzz — the gateway and llhttp agree on 2,000 requests, or differ only as the README says', { timeout: 120_000 }, async () => {
  try {
    await runDifferential({ numRuns: 2000, seed: SEED });
  } catch (err) {
    throw new Error(`seed ${SEED} (rerun with FUZZ_SEED=${SEED}): ${(err as Error).message}`, { cause: err });
  }
});
