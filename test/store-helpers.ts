// Shared by the store and deploy tests: the two revisions they deploy, a logger they read, temp files they look for.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { wagiApp, wagiFixture } from '../src/testing/index.js';

/** The hello module; with GREETING set it answers "<greeting> from Lamplighter!". */
export const HELLO = wagiFixture('../../../examples/hello/hello');
/** A module that answers "default\n". */
export const OUTPUT = wagiFixture('output');
/** An app of the hello module greeting `greeting` on /app. */
export const appWithGreeting = (greeting: string): string => wagiApp('app', 'app', 'app.wasm', ['/app'], `[function.env]\nGREETING = "${greeting}"`);
/** The older revision: the hello module, greeting "Old". */
export const OLD = appWithGreeting('Old');
export const OLD_TEXT = 'Old from Lamplighter!\n';
/** The newer revision: the output module (a new blob) and a new manifest. */
export const NEW = wagiApp('app', 'app', 'app.wasm', ['/app']);
export const NEW_TEXT = 'default\n';

/** One JSON log line as pino writes it. */
export type LogEntry = { level: number; msg: string } & Record<string, unknown>;

/** A logger whose JSON lines are kept in `lines`. */
export function capturingLogger(): { logger: Logger; lines: LogEntry[] } {
  const lines: LogEntry[] = [];
  return { logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogEntry) }), lines };
}

/** The store's temp files left under `dir`. */
export async function tempFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).filter((n) => path.basename(n).startsWith('.tmp-'));
}
