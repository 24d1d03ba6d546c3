// The node's structured JSON log (pino), to stderr.
import { pino, type Logger } from 'pino';

/** The platform logger type. */
export type { Logger };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** pino level name, or 'silent'. @default process.env.LAMPLIGHTER_LOG ?? 'info' */
  level?: string;
}

/** A JSON logger writing to stderr. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino({ level: options.level ?? process.env.LAMPLIGHTER_LOG ?? 'info', base: { svc: 'lamplighter' } }, pino.destination(2));
}
