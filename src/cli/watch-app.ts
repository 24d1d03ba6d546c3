// `lamplighter up --watch`: rebuild and redeploy when a source in the app directory changes.
//
// Each function is rebuilt with its `build` command (run by the shell in the app directory), or,
// for a component whose source has a JS/TS handler beside it, with `lamplighter build`. Then the
// app is deployed as any deploy is: requests in flight finish on the old revision.
import { spawn } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { handlerSourceBeside } from '../config/index.js';
import { loadManifest, type FunctionSpec } from '../manifest/index.js';
import { buildComponent } from '../runtime/component/index.js';
import type { CommandIo } from './command-io.js';

/** Changes closer together than this make one rebuild. */
const SETTLE_MS = 300;

/** Directories whose changes never mean a source changed. */
const IGNORED_DIRS = new Set(['.git', 'node_modules', '.lamplighter', 'target', 'dist']);

/** Runs `command` in `cwd` with the shell; resolves with its exit code and what it printed. */
function runShell(command: string, cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, { cwd, shell: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', (err) => resolve({ code: null, output: `${output}${err.message}\n` }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Rebuilds one function; resolves with false (after saying why) when its build failed. */
async function rebuild(fn: FunctionSpec, appDir: string, io: CommandIo): Promise<boolean> {
  if (fn.build) {
    const started = performance.now();
    const { code, output } = await runShell(fn.build, appDir);
    if (code !== 0) {
      io.err(`[${fn.name}] build failed (\`${fn.build}\` exited ${code ?? 'on a signal'}); still serving the last revision\n${output.trimEnd()}`);
      return false;
    }
    io.err(`[${fn.name}] built with \`${fn.build}\` in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return true;
  }
  if (fn.runtime === 'component' && fn.source) {
    const beside = await handlerSourceBeside(appDir, fn.source);
    if (!beside) return true;
    const handler = path.resolve(appDir, beside);
    try {
      const started = performance.now();
      const { component } = await buildComponent(handler, { isolation: fn.isolation });
      await writeFile(path.resolve(appDir, fn.source), component);
      io.err(`[${fn.name}] built ${path.relative(appDir, handler)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return true;
    } catch (err) {
      io.err(`[${fn.name}] build of ${path.relative(appDir, handler)} failed; still serving the last revision: ${(err as Error).message}`);
      return false;
    }
  }
  return true;
}

/** What a watch needs of the node it redeploys to. */
export interface WatchTarget {
  deployDir(dir: string): Promise<{ revision: { number: number }; unchanged: boolean }>;
}

/**
 * Watches `dir` (recursively) and, a moment after the last change to a file that is not an
 * artifact, rebuilds every function and redeploys. Changes during a rebuild start one more after
 * it. A build or deploy that fails is reported and the last revision keeps serving. Returns stop.
 */
export function watchApp(dir: string, target: WatchTarget, io: CommandIo): () => void {
  const appDir = path.resolve(dir);
  let artifacts = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let again = false;
  let stopped = false;

  const cycle = async (): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const { manifest } = await loadManifest(appDir);
        artifacts = new Set(manifest.functions.flatMap((f) => (f.source ? [path.resolve(appDir, f.source)] : [])));
        let built = true;
        for (const fn of manifest.functions) built = (await rebuild(fn, appDir, io)) && built;
        if (!built || stopped) continue;
        const result = await target.deployDir(appDir);
        io.err(result.unchanged ? `Unchanged: revision ${result.revision.number} serves already` : `Redeployed: revision ${result.revision.number} serves; requests in flight finished on the last one`);
      } while (again && !stopped);
    } catch (err) {
      io.err(`Redeploy failed; still serving the last revision: ${(err as Error).message}`);
    } finally {
      running = false;
    }
  };

  const onChange = (file: string | null): void => {
    if (stopped || file === null) return;
    const absolute = path.resolve(appDir, file);
    const parts = path.relative(appDir, absolute).split(path.sep);
    if (parts.some((p) => IGNORED_DIRS.has(p) || p.startsWith('.'))) return;
    // An artifact written by a build is its result, not a change to rebuild for.
    if (artifacts.has(absolute)) return;
    clearTimeout(timer);
    timer = setTimeout(() => void cycle(), SETTLE_MS);
  };

  // The first manifest read names the artifacts before any change arrives.
  void loadManifest(appDir).then(
    ({ manifest }) => (artifacts = new Set(manifest.functions.flatMap((f) => (f.source ? [path.resolve(appDir, f.source)] : [])))),
    () => undefined,
  );
  let watcher: FSWatcher;
  try {
    watcher = watch(appDir, { recursive: true }, (_event, file) => onChange(file === null ? null : String(file)));
  } catch (err) {
    io.err(`Cannot watch ${appDir}: ${(err as Error).message}; serving without --watch`);
    return () => undefined;
  }
  watcher.on('error', (err) => io.err(`Watching ${appDir} stopped: ${err.message}`));
  io.err(`Watching ${appDir} for changes`);
  return () => {
    stopped = true;
    clearTimeout(timer);
    watcher.close();
  };
}
