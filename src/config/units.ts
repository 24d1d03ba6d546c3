// Parsers for the human units used in manifests and flags: sizes ("64MiB") and durations ("10s").
//
// Both insist on a unit: a bare `timeout = 10` once meant 10 ms, which nobody who wrote it meant.

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses "64MiB", "512KiB", "1GB" or "100B"; undefined when malformed or without a unit (a bare number too). */
export function parseSize(input: string | number): number | undefined {
  if (typeof input !== 'string') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$/.exec(input);
  if (!match) return undefined;
  const factor = SIZE_UNITS[(match[2] as string).toLowerCase()];
  if (factor === undefined) return undefined;
  return Math.floor(Number(match[1]) * factor);
}

/** Parses "10s", "500ms", "1m" or "1h30m"; undefined when malformed or without a unit (a bare number too). */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input !== 'string') return undefined;
  const text = input.trim();
  if (text === '') return undefined;
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!match) return undefined;
    total += Number(match[1]) * (DURATION_UNITS[match[2] as string] as number);
    rest = rest.slice(match[0].length);
  }
  return total;
}
