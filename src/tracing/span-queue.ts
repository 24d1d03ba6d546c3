// A bounded queue of finished spans, sent in batches: a full queue drops (and counts), a failed export is counted and logged, nothing waits on it.
import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

/**
 * Why spans were lost: the queue was full, the export request that carried them failed, or the
 * node closed before they could be sent (or they ended after it had).
 */
export type SpanDropReason = 'queue_full' | 'export_failed' | 'closed';

/** What the queue reports; the tracer turns these into metrics and log lines. */
export interface SpanQueueEvents {
  /** Spans lost for a full queue or a close (an export's failure comes through `exportFailed`). */
  dropped(count: number, reason: SpanDropReason): void;
  exported(count: number): void;
  /** An export request carrying `count` spans failed; `error` says why when the exporter did. */
  exportFailed(count: number, error: Error | undefined): void;
}

/** Options for {@link SpanQueue}. */
export interface SpanQueueOptions {
  /** Spans held at most. */
  maxQueueSize: number;
  /** Spans per export request at most. */
  maxExportBatchSize: number;
  /** How often held spans are sent, in ms. */
  scheduledDelayMs: number;
  /** How long an export request may take before it counts as failed, in ms. */
  exportTimeoutMs: number;
}

/**
 * The span processor of a node's tracer. Unlike the SDK's batch processor it says what it lost:
 * every span dropped because the queue was full, and every span in an export that failed, is
 * reported through {@link SpanQueueEvents}. One export request is in flight at a time, so a slow
 * collector fills the queue (and spans are dropped) rather than piling up requests; a request's
 * handling never waits on any of it.
 */
export class SpanQueue implements SpanProcessor {
  readonly #exporter: SpanExporter;
  readonly #options: SpanQueueOptions;
  readonly #events: SpanQueueEvents;
  #queue: ReadableSpan[] = [];
  #inFlight: Promise<void> | undefined;
  /** The batch being exported; `abandoned` once the queue closed without waiting for it. */
  #batch: { size: number; abandoned: boolean } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(exporter: SpanExporter, options: SpanQueueOptions & { events: SpanQueueEvents }) {
    this.#exporter = exporter;
    this.#options = options;
    this.#events = options.events;
    this.#timer = setInterval(() => this.#sendWaiting(), options.scheduledDelayMs);
    this.#timer.unref();
  }

  /** Spans waiting to be sent. */
  get queued(): number {
    return this.#queue.length;
  }

  onStart(_span: Span): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.#closed) {
      this.#events.dropped(1, 'closed');
      return;
    }
    if (this.#queue.length >= this.#options.maxQueueSize) {
      this.#events.dropped(1, 'queue_full');
      return;
    }
    this.#queue.push(span);
    // A full batch goes at once (after the current tick, not inside the request that ended it).
    if (this.#queue.length === this.#options.maxExportBatchSize && this.#inFlight === undefined) setImmediate(() => this.#sendWaiting());
  }

  /** Sends everything queued now, batch after batch; resolves when the queue is empty and nothing is in flight. */
  async forceFlush(): Promise<void> {
    for (let guard = 0; guard < 10_000; guard++) {
      if (this.#inFlight) await this.#inFlight;
      else if (this.#queue.length > 0) this.#sendBatch();
      else return;
    }
  }

  /**
   * Stops the timer, sends what is left and shuts the exporter down, all within `timeoutMs`
   * (an export still retrying then is left to finish on its own). Spans ended later are dropped.
   */
  async shutdown(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.forceFlush(), late]);
    // What is neither sent nor refused by now is lost with the node: counted once, here.
    let left = this.#queue.length;
    this.#queue = [];
    if (this.#batch !== undefined) {
      this.#batch.abandoned = true;
      left += this.#batch.size;
    }
    if (left > 0) this.#events.dropped(left, 'closed');
    await Promise.race([this.#exporter.shutdown().catch(() => undefined), late]);
    clearTimeout(timer);
  }

  /** Sends batches while a whole one is waiting, and once what is left (the timer's tick). */
  #sendWaiting(): void {
    if (this.#inFlight === undefined && this.#queue.length > 0) this.#sendBatch();
  }

  #sendBatch(): void {
    const batch = this.#queue.splice(0, this.#options.maxExportBatchSize);
    this.#inFlight = this.#export(batch).then(() => {
      this.#inFlight = undefined;
      // More than a batch was waiting: the next one goes now rather than at the next tick.
      if (!this.#closed && this.#queue.length >= this.#options.maxExportBatchSize) this.#sendBatch();
    });
  }

  /** One export request; never rejects. A callback that never comes counts as a failure after the timeout. */
  #export(batch: ReadableSpan[]): Promise<void> {
    const state = { size: batch.length, abandoned: false };
    this.#batch = state;
    return new Promise<void>((resolve) => {
      let settled = false;
      const done = (result: ExportResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.#batch === state) this.#batch = undefined;
        // An abandoned batch was counted when the queue closed.
        if (!state.abandoned) {
          if (result.code === ExportResultCode.SUCCESS) this.#events.exported(batch.length);
          else this.#events.exportFailed(batch.length, result.error);
        }
        resolve();
      };
      const timer = setTimeout(() => done({ code: ExportResultCode.FAILED, error: new Error(`no answer within ${this.#options.exportTimeoutMs} ms`) }), this.#options.exportTimeoutMs);
      timer.unref();
      try {
        this.#exporter.export(batch, done);
      } catch (err) {
        done({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
      }
    });
  }
}
