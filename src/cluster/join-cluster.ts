// Joining a cluster: one NATS connection, the JetStream store, discovery over NATS, forwarding to peers.
import type { DiscoveryEventKind, DiscoveryTiming } from '../discovery/index.js';
import { NatsDiscovery } from '../discovery/index.js';
import { ClusterVariables } from '../variables/index.js';
import { ClusterBreakers, type BreakerClusterEvent } from '../breaker-cluster/index.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { JetStreamStore, type ArtifactStore, type StoreEvents } from '../store/index.js';
import { ClusterNode } from './cluster-node.js';
import { PeerForwarder } from './forwarder.js';
import { isPeerUnreachable } from './peer-errors.js';
import type { ForwardOutcome } from './function-peers.js';
import { connectCluster, type ClusterConnectOptions } from './nats-connection.js';

/** How a node joins a cluster (`serve --cluster …`). */
export interface ClusterSettings extends Omit<ClusterConnectOptions, 'name' | 'onStatus'> {
  /** `host:port` peers forward requests to. @default the gateway's host and port */
  advertise?: string;
  /** Heartbeat and drop times of discovery. @default 1 s and 3 s */
  timing?: DiscoveryTiming;
  /** Prefix of the JetStream buckets, so several clusters can share one NATS. @default 'lamplighter' */
  prefix?: string;
  /** Copies JetStream keeps of each bucket (3 on a 3-server NATS cluster survives a server's loss). @default 1 */
  replicas?: number;
}

/** What the node hears from the cluster's parts. */
export interface ClusterHooks {
  store: StoreEvents;
  onStatus?: (event: { type: string; data?: string }) => void;
  onDiscoveryEvent?: (kind: DiscoveryEventKind) => void;
  onForward?: (fn: string, outcome: ForwardOutcome) => void;
  onBreakerEvent?: (kind: BreakerClusterEvent) => void;
}

/** A node's membership of a cluster, joined. */
export interface JoinedCluster {
  store: ArtifactStore;
  node: ClusterNode;
  /** The node's NATS connection (function logs are forwarded on it). */
  connection: NatsConnection;
  /** Breakers judged across the cluster: each function revision's gate is attached here. */
  breakers: ClusterBreakers;
  /** App variable values every node reads (JetStream KV). */
  variables: ClusterVariables;
  /** Leaves discovery, stops forwarding, closes the store and the connection. */
  close(): Promise<void>;
}

/** Connects to NATS and opens the cluster's store and discovery as node `name`. */
export async function joinCluster(name: string, settings: ClusterSettings, hooks: ClusterHooks): Promise<JoinedCluster> {
  const nc = await connectCluster({ ...settings, name, onStatus: hooks.onStatus });
  try {
    const store = await JetStreamStore.open(nc, { prefix: settings.prefix, replicas: settings.replicas, events: hooks.store });
    const scope = await NatsDiscovery.start(nc, { node: name, timing: settings.timing, onEvent: hooks.onDiscoveryEvent });
    const node = new ClusterNode({ scope, forwarder: new PeerForwarder({ node: name }), isUnreachable: isPeerUnreachable, onForward: hooks.onForward });
    const breakers = new ClusterBreakers(nc, scope, { onEvent: hooks.onBreakerEvent });
    const variables = await ClusterVariables.open(nc, { prefix: settings.prefix, replicas: settings.replicas });
    return {
      store,
      node,
      connection: nc,
      breakers,
      variables,
      close: async () => {
        breakers.close();
        await node.close();
        await store.close?.();
        await nc.drain().catch(() => nc.close());
      },
    };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
