// `npm run fuzz`: the differential fuzzing of test/request-fuzz.ts for longer (FUZZ_RUNS cases,
// at most FUZZ_SECONDS), with a new seed each run unless FUZZ_SEED is given; prints the seed.
import { runDifferential } from './request-fuzz.js';

const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const numRuns = Number(process.env.FUZZ_RUNS ?? 200_000);
const seconds = Number(process.env.FUZZ_SECONDS ?? 300);
console.log(`request parser fuzz: seed ${seed}, up to ${numRuns} cases or ${seconds} s`);
const started = Date.now();
try {
  await runDifferential({ numRuns, seed, timeLimitMs: seconds * 1000 });
  console.log(`request parser fuzz: no difference in ${((Date.now() - started) / 1000).toFixed(0)} s (seed ${seed})`);
} catch (err) {
  console.error(`request parser fuzz: a difference (rerun with FUZZ_SEED=${seed})\n${(err as Error).message}`);
  process.exitCode = 1;
}
