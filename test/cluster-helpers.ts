// Shared by the cluster tests: apps, polling and requests against several nodes.
import path from 'node:path';
import { repoRoot, wagiApp, type TestNode } from '../src/testing/index.js';

export const HELLO_WASM = path.join(repoRoot, 'examples', 'hello', 'hello.wasm');
export const ECHO_SERVER = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');

/** The hello module greeting `greeting` on /hello. */
export const helloApp = (greeting: string, app = 'hello'): string =>
  wagiApp(app, app, 'hello.wasm', [`/${app}`], `[function.env]\nGREETING = "${greeting}"`);

/** A process function (the echo server) on `/<name>/...`, with extra TOML for its tables. */
export function echoApp(name: string, extra: string): string {
  return `name = "${name}"\n[[function]]\nname = "${name}"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nroutes = ["/${name}/..."]\nready = "/healthz"\n${extra}\n[function.env]\nPATH_PREFIX = "/${name}"\n`;
}

/** Polls `check` every 20 ms until it returns true; rejects after `ms` with `what`. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** GET with the status, the body and the node that served it. */
export async function get(url: string): Promise<{ status: number; text: string; node: string | null }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text(), node: res.headers.get('x-lamplighter-node') };
}

/** Whether `node` answers `path` with `text` now. */
export async function serves(node: TestNode, pathname: string, text: string): Promise<boolean> {
  try {
    const r = await get(node.url + pathname);
    return r.status === 200 && r.text === text;
  } catch {
    return false;
  }
}

/** Instances of `fn` lit on each node, by node name. */
export function instancesByNode(nodes: TestNode[], fn: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const node of nodes) out[node.platform.nodeName] = node.platform.group(fn)?.instanceCount ?? 0;
  return out;
}

export const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);
