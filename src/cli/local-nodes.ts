// Nodes running on this machine, for client commands: `up` keeps its token in a temporary data
// directory, so it leaves a note here saying where, and `ls`, `logs` or `inspect` find it.
import { mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';

interface LocalNodeNote {
  adminUrl: string;
  tokenFile: string;
  pid: number;
}

/** The directory of the notes: one per user, readable by that user only. */
function notesDir(): string {
  let uid: number | string;
  try {
    uid = userInfo().uid;
  } catch {
    uid = 'user';
  }
  return path.join(tmpdir(), `lamplighter-nodes-${uid}`);
}

function noteFile(adminPort: number): string {
  return path.join(notesDir(), `${adminPort}.json`);
}

/**
 * Notes that a node serves its admin API on `adminUrl` (loopback) with the token in `tokenFile`;
 * returns the function that removes the note (called when the node stops).
 */
export function noteLocalNode(adminUrl: string, adminPort: number, tokenFile: string): () => void {
  const file = noteFile(adminPort);
  try {
    mkdirSync(notesDir(), { recursive: true, mode: 0o700 });
    const note: LocalNodeNote = { adminUrl, tokenFile, pid: process.pid };
    writeFileSync(file, JSON.stringify(note), { mode: 0o600 });
  } catch {
    // Only a convenience: without it, client commands take --token or --data as before.
    return () => undefined;
  }
  return () => {
    try {
      const current = JSON.parse(readFileSync(file, 'utf8')) as LocalNodeNote;
      if (current.pid === process.pid) rmSync(file, { force: true });
      // The last node's note takes the directory with it; another node's note keeps it.
      rmdirSync(notesDir());
    } catch {
      // Already gone, or other notes remain.
    }
  };
}

/** The token of the node on this machine whose admin API is `server`, when one left a note and still runs. */
export async function localNodeToken(server: string): Promise<string | undefined> {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return undefined;
  }
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) return undefined;
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  try {
    const note = JSON.parse(await readFile(noteFile(port), 'utf8')) as LocalNodeNote;
    // A node killed without removing its note: its pid is gone (or reused, which the token then fails).
    process.kill(note.pid, 0);
    return (await readFile(note.tokenFile, 'utf8')).trim();
  } catch {
    return undefined;
  }
}
