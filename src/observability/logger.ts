// The node's structured log (pino) to stderr: JSON lines by default, or pretty-printed for a terminal.
import { pino, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

/** The platform logger type. */
export type { Logger };

/** How the node's log is written: one JSON object a line, or coloured text for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

/** The formats {@link createLogger} writes. */
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** pino level name, or 'silent'. @default process.env.LAMPLIGHTER_LOG ?? 'info' */
  level?: string;
  /** Output format. @default process.env.LAMPLIGHTER_LOG_FORMAT ?? 'json' */
  format?: LogFormat;
}

/** `text` as a {@link LogFormat}; throws a message naming the accepted ones otherwise. */
export function parseLogFormat(text: string, from = '--log-format'): LogFormat {
  if ((LOG_FORMATS as readonly string[]).includes(text)) return text as LogFormat;
  throw new Error(`${from} must be ${LOG_FORMATS.map((f) => `'${f}'`).join(' or ')}, got '${text}'`);
}

/** A logger writing to stderr. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.LAMPLIGHTER_LOG ?? 'info';
  const envFormat = process.env.LAMPLIGHTER_LOG_FORMAT;
  const format = options.format ?? (envFormat ? parseLogFormat(envFormat, 'LAMPLIGHTER_LOG_FORMAT') : 'json');
  if (format === 'pretty') {
    // In this thread, as a stream: a worker transport would be one more thread per node and lose
    // its last lines when the process exits at once.
    const stream = pinoPretty({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, ignore: 'pid,hostname,svc' });
    return pino({ level, base: { svc: 'lamplighter' } }, stream);
  }
  return pino({ level, base: { svc: 'lamplighter' } }, pino.destination(2));
}
