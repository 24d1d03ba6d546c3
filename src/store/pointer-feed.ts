// Every change of the pointer bucket, in order, to every listener; restarted where it stopped after a reconnect.
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection, QueuedIterator, Status } from '@nats-io/transport-node';
import type { PointerChange } from './artifact-store.js';

/** Turns one pointer entry into a change; undefined for an entry that holds no revision number (reported by the caller). */
export type ChangeOf = (entry: KvWatchEntry) => PointerChange | undefined;

/** Waits before a watch is tried again after a failure, growing to this many ms. */
const MAX_RETRY_MS = 2000;

/**
 * How often the feed compares the bucket's last sequence with what it delivered. When the
 * server holding the watch's consumer dies while this connection stays on another server, no
 * reconnect says so, and the client would notice only after its heartbeats go missing.
 */
const LAG_CHECK_MS = 1000;

/**
 * One watch of the pointer bucket per store, fanned out to the listeners of the store's `watch()`.
 *
 * The watch starts at the bucket's last sequence when the store opens, so nothing committed
 * after that is missed. The client's ordered consumer would recreate itself only after a minute
 * of missed heartbeats when a restarted server forgot it, so after every reconnect the watch is
 * started anew from the sequence after the last one delivered; sequences already delivered are
 * skipped, so a change is never reported twice or out of order.
 */
export class PointerFeed {
  readonly #kv: KV;
  readonly #nc: NatsConnection;
  readonly #changeOf: ChangeOf;
  readonly #listeners = new Set<(change: PointerChange) => void>();
  /** The highest stream sequence delivered (or already there when the store opened). */
  #delivered: number;
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  #status: AsyncIterable<Status> & { stop(): void } | undefined;
  #closed = false;
  /** Reconnects seen so far: a watch started before the latest one is replaced. */
  #reconnects = 0;
  #retry: NodeJS.Timeout | undefined;
  #wakeRetry: (() => void) | undefined;
  /** Resolves when the watch loop has ended after {@link close}. */
  #done: Promise<void> = Promise.resolve();
  #lagTimer: NodeJS.Timeout | undefined;
  /** What was delivered at the last check that found the feed behind the bucket. */
  #behindAt: number | undefined;

  private constructor(kv: KV, nc: NatsConnection, changeOf: ChangeOf, since: number) {
    this.#kv = kv;
    this.#nc = nc;
    this.#changeOf = changeOf;
    this.#delivered = since;
  }

  /** Starts watching the changes after the bucket's current last sequence. */
  static async start(kv: KV, nc: NatsConnection, changeOf: ChangeOf): Promise<PointerFeed> {
    const status = await kv.status();
    const feed = new PointerFeed(kv, nc, changeOf, status.streamInfo.state.last_seq);
    // The first watch is in place before open() resolves; later ones are the loop's business.
    const first = await feed.#startWatch();
    feed.#done = feed.#run(first);
    feed.#followReconnects();
    feed.#checkLag();
    return feed;
  }

  /** Calls `listener` with every change delivered from now on; returns a function that stops it. */
  listen(listener: (change: PointerChange) => void): () => void {
    if (this.#closed) return () => undefined;
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  #startWatch(): Promise<QueuedIterator<KvWatchEntry>> {
    return this.#kv.watch({ key: '>', resumeFromRevision: this.#delivered + 1 });
  }

  async #run(first: QueuedIterator<KvWatchEntry> | undefined): Promise<void> {
    let watch = first;
    let failures = 0;
    while (!this.#closed) {
      const generation = this.#reconnects;
      try {
        watch ??= await this.#startWatch();
        this.#watch = watch;
        // Closed, or reconnected while the watch was being set up: it may follow a lost consumer.
        if (this.#closed || generation !== this.#reconnects) watch.stop();
        for await (const entry of watch) this.#deliver(entry);
        // Ended by a reconnect: start again at once. Ended by itself: as after a failure.
        failures = generation === this.#reconnects ? failures + 1 : 0;
      } catch {
        // The server is away or its JetStream is still starting: try again shortly.
        failures++;
      }
      watch = undefined;
      this.#watch = undefined;
      // The connection is the caller's: once it is closed for good there is nothing to follow.
      if (this.#nc.isClosed()) break;
      if (failures > 0 && !this.#closed) await this.#pause(Math.min(MAX_RETRY_MS, 100 * 2 ** failures));
    }
  }

  #deliver(entry: KvWatchEntry): void {
    if (entry.revision <= this.#delivered) return;
    this.#delivered = entry.revision;
    const change = this.#changeOf(entry);
    if (!change) return;
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch {
        // One listener's failure must not keep the change from the others, nor stop the feed.
      }
    }
  }

  /** After a reconnect, the watch in place may be tied to a consumer the server no longer has: start anew. */
  #followReconnects(): void {
    // The client hands out a queued iterator that can be stopped; its declared type does not say so.
    const status = this.#nc.status() as AsyncIterable<Status> & { stop(): void };
    this.#status = status;
    void (async () => {
      for await (const s of status) {
        if (s.type === 'reconnect') {
          this.#reconnects++;
          this.#watch?.stop();
          this.#wakeRetry?.();
        }
      }
    })();
  }

  /**
   * Restarts the watch when the bucket is ahead of the feed on two checks in a row with nothing
   * delivered between them: its consumer is gone. One check behind is a change still on its way.
   */
  #checkLag(): void {
    this.#lagTimer = setTimeout(() => {
      void this.#kv.status().then(
        (status) => {
          const last = status.streamInfo.state.last_seq;
          if (last <= this.#delivered) this.#behindAt = undefined;
          else if (this.#behindAt !== this.#delivered) this.#behindAt = this.#delivered;
          else {
            this.#behindAt = undefined;
            this.#reconnects++;
            this.#watch?.stop();
            this.#wakeRetry?.();
          }
        },
        () => undefined, // The server is away: the reconnect or the next check deals with it.
      ).finally(() => {
        if (!this.#closed) this.#checkLag();
      });
    }, LAG_CHECK_MS);
    this.#lagTimer.unref();
  }

  #pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wakeRetry = resolve;
      this.#retry = setTimeout(resolve, ms);
    }).then(() => {
      clearTimeout(this.#retry);
      this.#wakeRetry = undefined;
    });
  }

  /** Stops the watch and forgets every listener. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    clearTimeout(this.#lagTimer);
    this.#status?.stop();
    this.#watch?.stop();
    this.#wakeRetry?.();
    await this.#done;
  }
}
