// Per-function log capture: a bounded ring of recent lines per function, with live followers.

/** One captured line of a function's output. */
export interface LogLine {
  /** Milliseconds since the epoch. */
  time: number;
  function: string;
  stream: 'stdout' | 'stderr' | 'platform';
  text: string;
}

/** Options for {@link FunctionLogs}. */
export interface FunctionLogsOptions {
  /** Lines kept per function. @default 1000 */
  keep?: number;
}

/** Keeps the recent output of every function and lets the CLI follow it. */
export class FunctionLogs {
  private readonly rings = new Map<string, LogLine[]>();
  private readonly followers = new Set<(line: LogLine) => void>();
  private readonly keep: number;

  constructor(options: FunctionLogsOptions = {}) {
    this.keep = options.keep ?? 1000;
  }

  /** Records text written by a function; splits it into lines. */
  write(fn: string, stream: LogLine['stream'], text: string): void {
    let ring = this.rings.get(fn);
    if (!ring) {
      ring = [];
      this.rings.set(fn, ring);
    }
    const time = Date.now();
    for (const part of text.split('\n')) {
      if (part === '') continue;
      const line: LogLine = { time, function: fn, stream, text: part.endsWith('\r') ? part.slice(0, -1) : part };
      ring.push(line);
      for (const follower of this.followers) follower(line);
    }
    if (ring.length > this.keep) ring.splice(0, ring.length - this.keep);
  }

  /** Recent lines of the given functions, oldest first. */
  recent(functions: readonly string[], limit = this.keep): LogLine[] {
    const lines = functions.flatMap((fn) => this.rings.get(fn) ?? []);
    lines.sort((a, b) => a.time - b.time);
    return limit <= 0 ? [] : lines.slice(-limit);
  }

  /** Calls `listener` for every new line; returns the unsubscribe function. */
  follow(listener: (line: LogLine) => void): () => void {
    this.followers.add(listener);
    return () => this.followers.delete(listener);
  }

  /** Forgets a removed function's lines. */
  forget(fn: string): void {
    this.rings.delete(fn);
  }
}
