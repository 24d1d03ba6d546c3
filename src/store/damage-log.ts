// Reports each damaged entry once: again only when it is rewritten and found damaged anew.
import type { DamageKind, StoreEvents } from './artifact-store.js';

/** Tells `events.damaged` about damaged entries, each once per version of the entry. */
export class DamageLog {
  readonly #events: StoreEvents;
  /** Entries already reported, by name → the version and reason reported. */
  readonly #reported = new Map<string, string>();

  constructor(events: StoreEvents) {
    this.#events = events;
  }

  /** Reports `name` unless this version of it was already reported for this reason. */
  report(kind: DamageKind, name: string, version: string | number, reason: string): void {
    const seen = `${version} ${reason}`;
    if (this.#reported.get(name) === seen) return;
    this.#reported.set(name, seen);
    this.#events.damaged?.({ kind, file: name, reason });
  }

  /** Forgets `name` once it is rewritten, so damage found in it later is reported again. */
  rewritten(name: string): void {
    this.#reported.delete(name);
  }
}
