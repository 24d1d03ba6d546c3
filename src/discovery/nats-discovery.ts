// Process groups across nodes over core NATS (no JetStream): heartbeats, numbered deltas, discover and sync.
//
// Subjects, under `lamplighter.pg.<scope>`:
//   `.all`           broadcasts: hb, discover, delta, bye (one subject, so a sender's messages keep their order)
//   `.node.<node>`   to one node: syncreq, sync
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { DEFAULT_SCOPE, type DiscoveryEventKind, type DiscoveryScope, type DiscoveryTiming } from './discovery.js';
import { ScopeNode } from './scope-node.js';
import { decodeWireMessage, encodeWireMessage, type WireMessage } from './wire.js';

/** Options for {@link NatsDiscovery.start}. */
export interface NatsDiscoveryOptions {
  /** Scopes are independent overlays; nodes see only their scope's groups. @default 'default' */
  scope?: string;
  /** This node's name, unique in the cluster. */
  node: string;
  /** @default heartbeat 1000 ms, drop after 3000 ms */
  timing?: DiscoveryTiming;
  /** Told of every discovery event, for metrics. @default none */
  onEvent?: (kind: DiscoveryEventKind) => void;
}

/** The subject prefix of a scope. */
export function scopeSubject(scope: string): string {
  return `lamplighter.pg.${subjectToken(scope)}`;
}

/** A name made safe as one subject token: no dots, wildcards or white space. */
export function subjectToken(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, (ch) => `%${ch.codePointAt(0)!.toString(16).padStart(2, '0')}`);
}

/** Process groups over a NATS connection the caller owns (and closes after the scope). */
export const NatsDiscovery = {
  /** Subscribes, announces this node and resolves; the others' members arrive shortly after. */
  async start(nc: NatsConnection, options: NatsDiscoveryOptions): Promise<DiscoveryScope> {
    const scopeName = options.scope ?? DEFAULT_SCOPE;
    const onEvent = options.onEvent;
    const base = scopeSubject(scopeName);
    const all = `${base}.all`;
    const inbox = (node: string): string => `${base}.node.${subjectToken(node)}`;
    const subscriptions: Subscription[] = [];
    let statusStop: (() => void) | undefined;
    const scope: ScopeNode = new ScopeNode({
      scope: scopeName,
      node: options.node,
      timing: options.timing,
      onEvent,
      onClosed: async () => {
        statusStop?.();
        // The goodbye must reach the server before the caller closes the connection.
        if (!nc.isClosed()) await withTimeout(nc.flush(), 1000).catch(() => {});
        for (const sub of subscriptions) sub.unsubscribe();
      },
    });
    const publish = (subject: string, message: WireMessage): void => {
      try {
        nc.publish(subject, encodeWireMessage(message));
      } catch {
        // A closed connection: the node is gone for the others, and its timers stop with close().
      }
    };
    const receive = (err: Error | null, data: Uint8Array): void => {
      if (err) return;
      const message = decodeWireMessage(data);
      if (!message) {
        try {
          onEvent?.('malformed');
        } catch {
          // Counting is best effort.
        }
        return;
      }
      scope.receive(message);
    };
    subscriptions.push(nc.subscribe(all, { callback: (err, msg) => receive(err, msg.data) }));
    subscriptions.push(nc.subscribe(inbox(options.node), { callback: (err, msg) => receive(err, msg.data) }));
    // The server must know the subscriptions before anyone answers the announcement.
    await nc.flush();
    const status = nc.status();
    statusStop = () => (status as { stop?: () => void }).stop?.();
    void (async () => {
      for await (const event of status) {
        // Messages published while away are lost to us and ours to them: announce, and all sides resync.
        if (event.type === 'reconnect') scope.announce();
      }
    })().catch(() => {});
    scope.attach({
      broadcast: (message) => publish(all, message),
      send: (node, message) => publish(inbox(node), message),
    });
    scope.startTimers();
    return scope;
  },
};

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
