// CPU profiles and heap snapshots of the running node, through the V8 inspector in-process.
import { Session } from 'node:inspector/promises';
import { ErrorCodes, LamplighterError } from '../errors/index.js';

/** Longest CPU profile the admin API takes, in seconds: a profile holds the session open. */
export const MAX_PROFILE_SECONDS = 300;

/**
 * One inspector session at a time per node: a profile and a heap snapshot at once would each
 * distort the other, and two snapshots at once double the memory a snapshot costs.
 */
export class NodeProfiler {
  #busy: string | undefined;

  /** Samples the node's CPU for `seconds` and resolves with the `.cpuprofile` JSON text. */
  async cpuProfile(seconds: number, signal?: AbortSignal): Promise<string> {
    if (!(seconds > 0 && seconds <= MAX_PROFILE_SECONDS)) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, `seconds must be a number above 0 and at most ${MAX_PROFILE_SECONDS}, like 10`);
    }
    return this.#exclusive('a CPU profile', async (session) => {
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, seconds * 1000);
        // A client that goes away ends the sampling early; what was sampled is still returned.
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
      const { profile } = await session.post('Profiler.stop');
      await session.post('Profiler.disable');
      return JSON.stringify(profile);
    });
  }

  /**
   * Hands a heap snapshot (`.heapsnapshot` JSON) to `write`, chunk by chunk as V8 makes it, so the
   * node never holds the whole text. V8 stops the node's JavaScript while it walks the heap: every
   * chunk arrives before this resolves, so `write` must not wait for the event loop.
   */
  async heapSnapshot(write: (chunk: string) => void): Promise<void> {
    await this.#exclusive('a heap snapshot', async (session) => {
      const onChunk = (message: { params: { chunk: string } }): void => write(message.params.chunk);
      session.on('HeapProfiler.addHeapSnapshotChunk', onChunk);
      try {
        await session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      } finally {
        session.off('HeapProfiler.addHeapSnapshotChunk', onChunk);
      }
    });
  }

  async #exclusive<T>(what: string, work: (session: Session) => Promise<T>): Promise<T> {
    if (this.#busy) {
      throw new LamplighterError(ErrorCodes.OVER_CAPACITY, `The node is already taking ${this.#busy}; try again when it is done`, { retryAfter: 5 });
    }
    this.#busy = what;
    const session = new Session();
    session.connect();
    try {
      return await work(session);
    } finally {
      session.disconnect();
      this.#busy = undefined;
    }
  }
}
