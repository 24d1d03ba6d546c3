// In-process test harness: a whole node on loopback ports, apps written to temp dirs, torn down in one call.
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Platform, type PlatformOptions } from '../control/index.js';
import type { Revision } from '../store/index.js';

/** The repository root (this file is dist/src/testing/harness.js or src/testing/harness.ts). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '..' : '.');

/** Absolute path of a built WAGI test module, e.g. `wagiFixture('echo')`. */
export function wagiFixture(name: string): string {
  return path.join(repoRoot, 'test', 'fixtures', 'wagi', `${name}.wasm`);
}

/** A node started for a test. */
export interface TestNode {
  platform: Platform;
  /** Gateway base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  /** Admin API base URL. */
  adminUrl: string;
  dataDir: string;
  /** Writes an app dir (manifest + files) and deploys it. `files` maps name → source path or content. */
  deploy(manifest: string, files?: Record<string, string | Uint8Array>): Promise<Revision>;
  /** Writes an app dir and returns its path without deploying. */
  writeApp(manifest: string, files?: Record<string, string | Uint8Array>): Promise<string>;
  close(): Promise<void>;
}

/** Starts a node on free loopback ports with a temp data dir. */
export async function startTestNode(options: Partial<PlatformOptions> = {}): Promise<TestNode> {
  const root = await mkdtemp(path.join(tmpdir(), 'lamplighter-test-'));
  const dataDir = options.dataDir ?? path.join(root, 'data');
  const platform = await Platform.start({ port: 0, adminPort: 0, logLevel: 'silent', processMetrics: false, sandboxWorkers: 2, ...options, dataDir });
  let apps = 0;
  const writeApp = async (manifest: string, files: Record<string, string | Uint8Array> = {}): Promise<string> => {
    const dir = await mkdtemp(path.join(root, `app-${++apps}-`));
    await writeFile(path.join(dir, 'lamplighter.toml'), manifest);
    for (const [name, content] of Object.entries(files)) {
      const target = path.join(dir, name);
      if (typeof content === 'string') await copyFile(content, target);
      else await writeFile(target, content);
    }
    return dir;
  };
  return {
    platform,
    url: `http://127.0.0.1:${platform.port}`,
    adminUrl: `http://127.0.0.1:${platform.adminPort}`,
    dataDir,
    writeApp,
    deploy: async (manifest, files) => (await platform.deployDir(await writeApp(manifest, files))).revision,
    close: async () => {
      await platform.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** One WAGI function's manifest, with optional extra TOML lines for limits/scale/env tables. */
export function wagiApp(app: string, fn: string, source: string, routes: string[], extra = ''): string {
  return `name = "${app}"\n\n[[function]]\nname = "${fn}"\nsource = "${source}"\nroutes = ${JSON.stringify(routes)}\n${extra}\n`;
}
