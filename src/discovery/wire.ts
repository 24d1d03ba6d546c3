// The messages nodes of a scope exchange, and their checked decoding from bytes.
import { z } from 'zod';
import type { MemberData } from './discovery.js';

/** One change a node made to its own members; `data` is the member's data after it. */
export type WireOp =
  | { readonly op: 'join'; readonly group: string; readonly id: string; readonly data: MemberData }
  | { readonly op: 'leave'; readonly group: string; readonly id: string }
  | { readonly op: 'update'; readonly group: string; readonly id: string; readonly data: MemberData };

/** A node's own members: group → [id, joins, data]. */
export type WireGroups = Readonly<Record<string, ReadonlyArray<readonly [string, number, MemberData]>>>;

/**
 * Every message names its sender `n` and the sender's incarnation `i` (new at each start), so a
 * node restarted under the same name is told apart. `s` is the sender's delta sequence: the last
 * delta it sent (heartbeat, sync) or this one (delta).
 */
export type WireMessage =
  /** "I am alive, and my last delta was `s`." Broadcast. */
  | { readonly t: 'hb'; readonly n: string; readonly i: string; readonly s: number }
  /** "I (re)started or reconnected: here are my members, send me yours." Broadcast. */
  | { readonly t: 'discover'; readonly n: string; readonly i: string; readonly s: number; readonly g: WireGroups }
  /** "Send me your members." To one node. */
  | { readonly t: 'syncreq'; readonly n: string; readonly i: string }
  /** "These are all my members as of delta `s`." To one node. */
  | { readonly t: 'sync'; readonly n: string; readonly i: string; readonly s: number; readonly g: WireGroups }
  /** Changes to the sender's members, in order. Broadcast. */
  | { readonly t: 'delta'; readonly n: string; readonly i: string; readonly s: number; readonly ops: readonly WireOp[] }
  /** "I am leaving with all my members." Broadcast. */
  | { readonly t: 'bye'; readonly n: string; readonly i: string };

const name = z.string().min(1).max(256);
const seq = z.number().int().nonnegative();
const data = z.record(z.string(), z.json());
const groups = z.record(name, z.array(z.tuple([name, z.number().int().positive(), data])));
const op = z.discriminatedUnion('op', [
  z.object({ op: z.literal('join'), group: name, id: name, data }),
  z.object({ op: z.literal('leave'), group: name, id: name }),
  z.object({ op: z.literal('update'), group: name, id: name, data }),
]);
const message = z.discriminatedUnion('t', [
  z.object({ t: z.literal('hb'), n: name, i: name, s: seq }),
  z.object({ t: z.literal('discover'), n: name, i: name, s: seq, g: groups }),
  z.object({ t: z.literal('syncreq'), n: name, i: name }),
  z.object({ t: z.literal('sync'), n: name, i: name, s: seq, g: groups }),
  z.object({ t: z.literal('delta'), n: name, i: name, s: seq, ops: z.array(op).min(1) }),
  z.object({ t: z.literal('bye'), n: name, i: name }),
]);

/** The message in `bytes`, or undefined when they are not one (not JSON, or not of this shape). */
export function decodeWireMessage(bytes: Uint8Array): WireMessage | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  const result = message.safeParse(parsed);
  return result.success ? (result.data as WireMessage) : undefined;
}

/** The bytes of `message`. */
export function encodeWireMessage(message: WireMessage): Uint8Array {
  return Buffer.from(JSON.stringify(message), 'utf8');
}
