// Reading a revision or a `current` pointer back, verified: the schema, the number, the app.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Revision } from './artifact-store.js';

/** What reading one store file found. */
export type FileRead<T> = { state: 'ok'; value: T } | { state: 'missing' } | { state: 'damaged'; reason: string };

const revisionSchema = z.object({
  app: z.string().min(1),
  number: z.number().int().positive(),
  createdAt: z.string(),
  manifest: z.string().min(1),
  artifacts: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256 hex digest')),
  appDir: z.string().optional(),
});

async function readText(file: string): Promise<FileRead<string>> {
  try {
    return { state: 'ok', value: await readFile(file, 'utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    return { state: 'damaged', reason: `cannot be read (${(err as Error).message})` };
  }
}

/** Reads `<n>.json` of `app`: valid JSON, the revision schema, and its own app and number. */
export async function readRevisionFile(file: string, app: string, number: number): Promise<FileRead<Revision>> {
  const text = await readText(file);
  return text.state === 'ok' ? parseRevision(text.value, app, number) : text;
}

/** Checks a stored revision's text, wherever it was stored: valid JSON, the schema, and its own app and number. */
export function parseRevision(text: string, app: string, number: number): FileRead<Revision> {
  if (text.trim() === '') return { state: 'damaged', reason: 'is empty' };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { state: 'damaged', reason: `is not valid JSON (${(err as Error).message}; ${text.length} bytes)` };
  }
  const parsed = revisionSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { state: 'damaged', reason: `is not a revision (${issue ? `${issue.path.join('.') || '(top level)'}: ${issue.message}` : 'schema mismatch'})` };
  }
  const revision = parsed.data;
  if (revision.app !== app || revision.number !== number) {
    return { state: 'damaged', reason: `holds revision ${revision.number} of app '${revision.app}', not revision ${number} of '${app}'` };
  }
  const { appDir, ...rest } = revision;
  return { state: 'ok', value: appDir === undefined ? rest : { ...rest, appDir } };
}

/** Reads an app's `current` pointer: a positive revision number and nothing else. */
export async function readPointer(file: string): Promise<FileRead<number>> {
  const text = await readText(file);
  return text.state === 'ok' ? parsePointer(text.value) : text;
}

/** Checks a stored pointer's text: a positive revision number and nothing else. */
export function parsePointer(text: string): FileRead<number> {
  const value = text.trim();
  if (!/^[1-9]\d{0,15}$/.test(value)) {
    return { state: 'damaged', reason: value === '' ? 'is empty' : `does not hold a revision number (it holds ${JSON.stringify(value.slice(0, 40))})` };
  }
  return { state: 'ok', value: Number(value) };
}
