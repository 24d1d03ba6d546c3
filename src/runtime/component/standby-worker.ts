// One parked component worker per function, with its instance ready, for lighting a function at zero without waiting.
import type { ComponentRuntime, SlotOwner, Standby } from './component-instance.js';
import { WorkerSlot } from './component-instance.js';

/**
 * Keeps at most one idle worker for a function: started once the modules are compiled, taken by
 * the next instance that lights, and given back by an instance that stops. While parked, its
 * messages are dropped; if it exits, nothing is parked until an instance gives one back.
 */
export class StandbyWorker implements Standby {
  #parked: WorkerSlot | undefined;
  #starting: Promise<void> | undefined;
  #closed = false;
  readonly #owner: SlotOwner = {
    onMessage: () => undefined,
    onExit: (slot) => {
      if (this.#parked === slot) this.#parked = undefined;
    },
  };

  constructor(runtime: ComponentRuntime, modules: Promise<Record<string, WebAssembly.Module>>) {
    this.#starting = modules.then(
      async (compiled) => {
        if (this.#closed) return;
        const slot = new WorkerSlot(runtime, compiled, this.#owner);
        try {
          await slot.ready;
        } catch {
          return;
        }
        if (this.#closed || this.#parked) slot.terminate();
        else this.#parked = slot;
      },
      () => undefined,
    );
  }

  /** Resolves once the first parked worker is ready (or could not start). */
  ready(): Promise<void> {
    return this.#starting ?? Promise.resolve();
  }

  take(): WorkerSlot | undefined {
    const slot = this.#parked;
    this.#parked = undefined;
    if (slot && !slot.idle) {
      slot.terminate();
      return undefined;
    }
    return slot;
  }

  give(slot: WorkerSlot): boolean {
    if (this.#closed || this.#parked || !slot.idle) return false;
    slot.adopt(this.#owner);
    // An instance kept between requests starts over before it is handed to the next one.
    slot.send({ t: 'reset' });
    this.#parked = slot;
    return true;
  }

  /** Stops the parked worker; nothing is parked afterwards. */
  close(): void {
    this.#closed = true;
    this.#parked?.terminate();
    this.#parked = undefined;
  }
}
