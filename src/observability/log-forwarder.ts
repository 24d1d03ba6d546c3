// Sends function log lines on to a sink (a NATS subject, a collector) through a bounded queue that never makes the writer wait.
import type { LogLine } from './function-logs.js';

/** Somewhere function log lines go on to. */
export interface LogSink {
  /** Its name in the drop metric and the node log, e.g. `nats`. */
  readonly name: string;
  /** Sends a batch, oldest first; resolves once the sink has taken it. A rejection drops the batch. */
  send(lines: readonly LogLine[]): Promise<void>;
  /** Releases what the sink holds. @default nothing */
  close?(): Promise<void>;
}

/** Settings of a {@link LogForwarder}. */
export interface LogForwarderOptions {
  /** Lines held while the sink is slow; past it new lines are dropped. @default 10_000 */
  bufferLines?: number;
  /** Lines sent in one batch at most. @default 500 */
  batchLines?: number;
  /** Lines of function `fn` dropped: the buffer was full or the sink refused them. */
  onDropped?(fn: string, count: number): void;
  /** The sink failed (`err`) after working, or works again after failing (undefined). */
  onFailure?(err: Error | undefined): void;
}

/** How long closing waits for a sink to take what is queued. */
export const CLOSE_GRACE_MS = 2000;

/** Default of {@link LogForwarderOptions.bufferLines}. */
export const DEFAULT_FORWARD_BUFFER_LINES = 10_000;

/** One sink fed from a bounded queue, one batch in flight at a time. */
export class LogForwarder {
  readonly sink: LogSink;
  readonly #bufferLines: number;
  readonly #batchLines: number;
  readonly #onDropped: (fn: string, count: number) => void;
  readonly #onFailure: (err: Error | undefined) => void;
  #queue: LogLine[] = [];
  #running = false;
  #failing = false;
  #closed = false;
  readonly #idle: Array<() => void> = [];

  constructor(sink: LogSink, options: LogForwarderOptions = {}) {
    this.sink = sink;
    this.#bufferLines = options.bufferLines ?? DEFAULT_FORWARD_BUFFER_LINES;
    this.#batchLines = options.batchLines ?? 500;
    this.#onDropped = options.onDropped ?? (() => {});
    this.#onFailure = options.onFailure ?? (() => {});
  }

  /** Queues a line for the sink; false when it was dropped. */
  offer(line: LogLine): boolean {
    if (this.#closed || this.#queue.length >= this.#bufferLines) {
      this.#onDropped(line.function, 1);
      return false;
    }
    this.#queue.push(line);
    if (!this.#running) {
      this.#running = true;
      setImmediate(() => void this.#drain());
    }
    return true;
  }

  /** Resolves once every line queued so far has been sent or dropped. */
  flush(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Sends what is queued, then closes the sink. A sink that has not taken it all within `graceMs`
   * (a stalled collector) does not hold the node's shutdown: what is left is dropped and counted.
   */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    this.#closed = true;
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([this.flush().then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
    clearTimeout(timer);
    if (late) {
      const left = new Map<string, number>();
      for (const line of this.#queue.splice(0)) left.set(line.function, (left.get(line.function) ?? 0) + 1);
      for (const [fn, count] of left) this.#onDropped(fn, count);
    }
    await this.sink.close?.();
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#batchLines);
      try {
        await this.sink.send(batch);
        if (this.#failing) {
          this.#failing = false;
          this.#onFailure(undefined);
        }
      } catch (err) {
        const byFunction = new Map<string, number>();
        for (const line of batch) byFunction.set(line.function, (byFunction.get(line.function) ?? 0) + 1);
        for (const [fn, count] of byFunction) this.#onDropped(fn, count);
        if (!this.#failing) {
          this.#failing = true;
          this.#onFailure(err as Error);
        }
      }
    }
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}

/** The part of a NATS connection the NATS sink uses (a `NatsConnection` from @nats-io/transport-node has it). */
export interface LogPublisher {
  publish(subject: string, payload: Uint8Array): void;
  /** Resolves once the server has everything published so far: the sink's back-pressure. */
  flush(): Promise<void>;
}

/** Options for {@link natsLogSink}. */
export interface NatsLogSinkOptions {
  /** Subjects are `<prefix>.<function>`. @default 'lamplighter.logs' */
  subjectPrefix?: string;
  /** Added to every message as `node`, so a subscriber knows where a line came from. @default undefined */
  node?: string;
}

/** Default of {@link NatsLogSinkOptions.subjectPrefix}. */
export const DEFAULT_LOG_SUBJECT_PREFIX = 'lamplighter.logs';

/**
 * A sink publishing each line as JSON (`{time, function, stream, text, node}`) to
 * `lamplighter.logs.<function>`; function names are lower-case letters, digits and dashes, so each
 * is one subject token. A batch counts as sent once the server has it (a flush), so a slow
 * connection fills the forwarder's bounded queue instead of the client's buffer. After a failed
 * flush, nothing is published until an empty flush succeeds: the client keeps what is published
 * while it reconnects, without a bound.
 */
export function natsLogSink(connection: LogPublisher, options: NatsLogSinkOptions = {}): LogSink {
  const prefix = options.subjectPrefix ?? DEFAULT_LOG_SUBJECT_PREFIX;
  const encoder = new TextEncoder();
  let reachable = true;
  return {
    name: 'nats',
    async send(lines) {
      if (!reachable) {
        await connection.flush();
        reachable = true;
      }
      for (const line of lines) {
        connection.publish(`${prefix}.${line.function}`, encoder.encode(JSON.stringify(options.node === undefined ? line : { ...line, node: options.node })));
      }
      try {
        await connection.flush();
      } catch (err) {
        reachable = false;
        throw err;
      }
    },
  };
}
