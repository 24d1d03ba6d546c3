// Process groups inside one process: the embedded node (a network of one), and whole clusters in a test.
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { DEFAULT_SCOPE, type DiscoveryEventKind, type DiscoveryScope, type DiscoveryTiming } from './discovery.js';
import { ScopeNode } from './scope-node.js';
import type { WireMessage } from './wire.js';

/** Options for {@link MemoryNetwork.scope}. */
export interface MemoryScopeOptions {
  /** @default 'default' */
  scope?: string;
  /** @default heartbeat 1000 ms, drop after 3000 ms */
  timing?: DiscoveryTiming;
  /** Told of every discovery event, for metrics. @default none */
  onEvent?: (kind: DiscoveryEventKind) => void;
}

/**
 * Nodes of one process that exchange discovery messages in memory, asynchronously and in order, as
 * over a network. `cut`, `heal` and `kill` play a partition and a crash. A node alone sends
 * nothing and runs no timers; heartbeats start once a second node joins its scope.
 */
export class MemoryNetwork {
  /** scope → node → its protocol */
  readonly #scopes = new Map<string, Map<string, ScopeNode>>();
  readonly #cut = new Set<string>();

  /** Starts `node` in a scope (one network may hold several scopes). */
  scope(node: string, options: MemoryScopeOptions = {}): DiscoveryScope {
    const scopeName = options.scope ?? DEFAULT_SCOPE;
    let nodes = this.#scopes.get(scopeName);
    if (!nodes) this.#scopes.set(scopeName, (nodes = new Map()));
    if (nodes.has(node)) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Node '${node}' is already in discovery scope '${scopeName}'; give each node its own name`);
    }
    const members = nodes;
    const scope: ScopeNode = new ScopeNode({
      scope: scopeName,
      node,
      timing: options.timing,
      onEvent: options.onEvent,
      onClosed: () => {
        if (members.get(node) === scope) members.delete(node);
      },
    });
    members.set(node, scope);
    const deliver = (to: ScopeNode, message: WireMessage): void => {
      // Delivered later, as a network would, and lost when either end is cut by then.
      setImmediate(() => {
        if (members.get(to.node) === to && !this.#cut.has(node) && !this.#cut.has(to.node)) to.receive(message);
      });
    };
    scope.attach({
      broadcast: (message) => {
        if (this.#cut.has(node)) return;
        for (const other of members.values()) if (other !== scope && !other.closed) deliver(other, message);
      },
      send: (to, message) => {
        const target = members.get(to);
        if (target && target !== scope && !this.#cut.has(node)) deliver(target, message);
      },
      hasPeers: () => members.size > 1,
    });
    if (members.size > 1) for (const each of members.values()) each.startTimers();
    return scope;
  }

  /** Partitions `node` from every other: nothing reaches it or leaves it, heartbeats included. */
  cut(node: string): void {
    this.#cut.add(node);
  }

  /** Reconnects `node`; it announces itself and the views converge by wholesale sync. */
  heal(node: string): void {
    if (!this.#cut.delete(node)) return;
    for (const nodes of this.#scopes.values()) nodes.get(node)?.announce();
  }

  /** Stops `node` at once, without a goodbye: the others drop it once it has been silent long enough. */
  kill(node: string): void {
    for (const nodes of this.#scopes.values()) {
      const scope = nodes.get(node);
      if (!scope) continue;
      scope.halt();
    }
    this.#cut.delete(node);
  }
}
