// The messages of the breaker protocol, as JSON, and their strict decoding: a bad message is dropped, never thrown.
import { MAX_KEY_LENGTH } from '../admission/breaker/index.js';
import type { Epoch } from './decision-epoch.js';

/** Version of the messages; a message of another version is foreign and dropped. */
export const WIRE_VERSION = 1;

/** Most keys one report or decision message carries; a larger batch is sent in several. */
export const MAX_KEYS_PER_MESSAGE = 500;

/** One bucket of a key's window on the sender: [start (ms, a multiple of bucketMs), requests, failures]. */
export type WireBucket = readonly [start: number, requests: number, failures: number];

/** A node's counts of one key, replacing the previous report of that node for that key. */
export interface ReportedKey {
  key: string;
  /** Epoch of the newest decision the sender applied to the key (its counts start there); null if none. */
  epoch: Epoch | null;
  buckets: WireBucket[];
}

/**
 * Node → owner, every report interval: counts of the keys the recipient owns and the sender saw
 * calls for. Shown decoded; on the wire it is compact (see {@link encodeMessage}).
 */
export interface ReportMessage {
  v: typeof WIRE_VERSION;
  kind: 'report';
  fn: string;
  from: string;
  bucketMs: number;
  keys: ReportedKey[];
}

/** Node → owner: a half-open key's probes decided it here, under the owner's decision `epoch`. */
export interface ProbeMessage {
  v: typeof WIRE_VERSION;
  kind: 'probe';
  fn: string;
  from: string;
  key: string;
  epoch: Epoch;
  passed: boolean;
}

/** One decision of an owner about one key. */
export interface Decision {
  key: string;
  epoch: Epoch;
  state: 'open' | 'closed';
  /** Open: ms the breaker has left before it turns half-open, counted from when the message was sent. */
  leftMs: number;
}

/** Owner → every node serving the function: new decisions, and live open ones again (lost messages heal). */
export interface DecisionMessage {
  v: typeof WIRE_VERSION;
  kind: 'decision';
  fn: string;
  from: string;
  decisions: Decision[];
}

/** Any message of the protocol. */
export type BreakerMessage = ReportMessage | ProbeMessage | DecisionMessage;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Most buckets one key's report carries, and the oldest a bucket may be (in buckets). */
const MAX_BUCKET_AGE = 63;

/**
 * The bytes of `message`. A report goes compact, since it is the bulk of the traffic: each key as
 * `[key, epoch, [[age, requests, failures]…]]`, a bucket's age counted back from the message's
 * `base` (the newest bucket's index, start / bucketMs), so a start costs one digit, not thirteen.
 */
export function encodeMessage(message: BreakerMessage): Uint8Array {
  if (message.kind !== 'report') return encoder.encode(JSON.stringify(message));
  const bucketMs = message.bucketMs;
  let base = 0;
  for (const k of message.keys) for (const b of k.buckets) base = Math.max(base, Math.round(b[0] / bucketMs));
  // Written out by hand: reports carry thousands of keys, and nested arrays for JSON.stringify
  // to walk cost more than the text itself.
  let keys = '';
  for (const k of message.keys) {
    let buckets = '';
    for (const b of k.buckets) {
      const age = base - Math.round(b[0] / bucketMs);
      if (age <= MAX_BUCKET_AGE) buckets += `${buckets === '' ? '' : ','}[${age},${b[1]},${b[2]}]`;
    }
    keys += `${keys === '' ? '' : ','}[${JSON.stringify(k.key)},${k.epoch === null ? 'null' : JSON.stringify(k.epoch)},[${buckets}]]`;
  }
  return encoder.encode(`{"v":${message.v},"kind":"report","fn":${JSON.stringify(message.fn)},"from":${JSON.stringify(message.from)},"bucketMs":${bucketMs},"base":${base},"keys":[${keys}]}`);
}

/** The message in `data`, or undefined when it is not valid UTF-8 JSON of a known shape and version. */
export function decodeMessage(data: Uint8Array): BreakerMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    return undefined;
  }
  if (!isRecord(value) || value['v'] !== WIRE_VERSION || !isName(value['fn']) || !isName(value['from'])) return undefined;
  switch (value['kind']) {
    case 'report':
      return decodeReport(value);
    case 'probe':
      return isKey(value['key']) && isEpoch(value['epoch']) && typeof value['passed'] === 'boolean' ? (value as unknown as ProbeMessage) : undefined;
    case 'decision':
      return isDecisions(value['decisions']) ? (value as unknown as DecisionMessage) : undefined;
    default:
      return undefined;
  }
}

function decodeReport(value: Record<string, unknown>): ReportMessage | undefined {
  const bucketMs = value['bucketMs'];
  const base = value['base'];
  const keys = value['keys'];
  if (!isAmount(bucketMs) || bucketMs < 1 || !isCount(base) || !Array.isArray(keys) || keys.length > MAX_KEYS_PER_MESSAGE) return undefined;
  const out: ReportedKey[] = [];
  for (const k of keys as unknown[]) {
    if (!Array.isArray(k) || k.length !== 3 || !isKey(k[0]) || (k[1] !== null && !isEpoch(k[1])) || !Array.isArray(k[2]) || k[2].length > MAX_BUCKET_AGE + 1) return undefined;
    const buckets: WireBucket[] = [];
    for (const b of k[2] as unknown[]) {
      if (!Array.isArray(b) || b.length !== 3 || !isCount(b[0]) || b[0] > MAX_BUCKET_AGE || b[0] > base || !isCount(b[1]) || !isCount(b[2]) || b[2] > b[1]) return undefined;
      buckets.push([(base - b[0]) * bucketMs, b[1], b[2]]);
    }
    out.push({ key: k[0], epoch: k[1] as Epoch | null, buckets });
  }
  return { v: WIRE_VERSION, kind: 'report', fn: value['fn'] as string, from: value['from'] as string, bucketMs, keys: out };
}

function isDecisions(value: unknown): value is Decision[] {
  if (!Array.isArray(value) || value.length > MAX_KEYS_PER_MESSAGE) return false;
  for (const d of value as unknown[]) {
    if (!isRecord(d) || !isKey(d['key']) || !isEpoch(d['epoch']) || (d['state'] !== 'open' && d['state'] !== 'closed') || !isAmount(d['leftMs'])) return false;
  }
  return true;
}

function isEpoch(value: unknown): value is Epoch {
  return Array.isArray(value) && value.length === 3 && isAmount(value[0]) && isCount(value[1]) && isName(value[2]);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isAmount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 256;
}

function isKey(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_KEY_LENGTH;
}
