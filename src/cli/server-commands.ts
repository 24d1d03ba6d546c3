// CLI commands that run a node: `up` (one app, like `spin up`) and `serve` (a long-running node).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { settingValue, type NodeConfig } from '../config/index.js';
import { Platform } from '../control/index.js';
import { deployStepChannel, type DeployStepEvent } from '../observability/index.js';
import { installExitHook } from '../runtime/process/index.js';
import type { Revision } from '../store/index.js';
import { DEFAULT_DATA_DIR } from './admin-client.js';
import type { CommandIo } from './client-commands.js';
import { reloadsConfig } from './config-reload.js';
import { printFunctionOutput } from './function-output.js';
import { noteLocalNode } from './local-nodes.js';
import { addNodeOptions, nodeConfigOf, platformOptionsOf } from './node-options.js';
import { watchApp } from './watch-app.js';

/** Steps shorter than this print nothing. */
const PROGRESS_AFTER_MS = 1000;

/**
 * Prints deploy steps that take over a second: `preparing component hello…` once one has run
 * for a second, then `preparing component hello… 6.1 s` when it ends. Returns the unsubscribe.
 */
function reportProgress(io: CommandIo): () => void {
  const running = new Map<string, NodeJS.Timeout>();
  const onStep = (message: unknown): void => {
    const event = message as DeployStepEvent;
    const label = `${event.step} ${event.function}…`;
    const key = `${event.step}\0${event.function}`;
    if (event.phase === 'start') {
      const timer = setTimeout(() => io.err(label), PROGRESS_AFTER_MS);
      timer.unref();
      running.set(key, timer);
      return;
    }
    clearTimeout(running.get(key));
    running.delete(key);
    const ms = event.durationMs ?? 0;
    if (ms >= PROGRESS_AFTER_MS) io.err(`${label} ${(ms / 1000).toFixed(1)} s${event.outcome && event.outcome !== 'ready' ? ` (${event.outcome})` : ''}`);
  };
  deployStepChannel.subscribe(onStep);
  return () => {
    deployStepChannel.unsubscribe(onStep);
    for (const timer of running.values()) clearTimeout(timer);
  };
}

/**
 * Resolves on the first SIGINT or SIGTERM. Called as soon as the node has started, before it
 * prints where it serves: a signal's default action ends the process at once, so a handler added
 * after that line would leave a window in which a supervisor's SIGTERM kills it without a drain.
 */
function stopSignal(io: CommandIo): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (): void => {
      io.err('Shutting down...');
      // A second signal while closing means "now": exit, and the exit hook kills child processes.
      const force = (): void => process.exit(1);
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

async function runUntilSignal(platform: Platform, stopped: Promise<void>, cleanup: () => Promise<void>): Promise<void> {
  await stopped;
  await platform.close();
  await cleanup();
}

/** A bind address as it stands in a URL (IPv6 in brackets). */
function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function describeRoutes(platform: Platform, host: string, io: CommandIo): void {
  const authority = urlHost(host);
  for (const app of platform.list()) {
    for (const fn of app.functions) {
      for (const route of fn.routes) io.out(`  ${fn.name} (${fn.runtime}): ${platform.scheme}://${authority}:${platform.port}${route}`);
    }
  }
}

/** Registers `up` and `serve` on `program`. */
export function registerServerCommands(program: Command, io: CommandIo): void {
  addNodeOptions(program.command('up').argument('[dir]', 'app directory holding lamplighter.toml (or spin.toml)', '.').description('serve the app in [dir] on an embedded node (no other service needed)'), 'up')
    .action(async (dir: string, _options: unknown, cmd: Command) => {
      installExitHook({ signals: [] }); // SIGINT/SIGTERM stop gracefully below; the hook stays the last resort on exit.
      const tempData = await mkdtemp(path.join(tmpdir(), 'lamplighter-up-'));
      let config: NodeConfig;
      try {
        config = await nodeConfigOf(cmd, 'up', tempData);
      } catch (err) {
        await rm(tempData, { recursive: true, force: true });
        throw err;
      }
      const dataDir = settingValue<string>(config, 'data')!;
      const ownsData = dataDir === tempData;
      if (!ownsData) await rm(tempData, { recursive: true, force: true });
      // The app is deployed before the gateway listens: a request never finds the node without it.
      const stopProgress = reportProgress(io);
      let revision: Revision | undefined;
      let platform: Platform;
      try {
        platform = await Platform.start(
          platformOptionsOf(config, {
            dataDir,
            beforeListen: async (p) => {
              // Shown from before the deploy, so what a function prints as it starts is seen too.
              if (settingValue<boolean>(config, 'function_output')) printFunctionOutput(p.logs, io);
              ({ revision } = await p.deployDir(dir));
            },
          }),
        );
      } catch (err) {
        if (ownsData) await rm(dataDir, { recursive: true, force: true });
        throw err;
      } finally {
        stopProgress();
      }
      const stopped = stopSignal(io);
      const host = settingValue<string>(config, 'host')!;
      const adminUrl = `${platform.adminScheme}://${urlHost(settingValue<string>(config, 'admin_host')!)}:${platform.adminPort}`;
      io.out(`Serving app '${revision!.app}' on ${platform.scheme}://${host}:${platform.port} (admin and /metrics on ${adminUrl})`);
      if (platform.redirectPort) io.out(`Redirecting http://${host}:${platform.redirectPort} to HTTPS`);
      describeRoutes(platform, host, io);
      io.out(`Dashboard: ${adminUrl}/ui`);
      // `ls`, `logs` and `inspect` in another terminal find this node's token through the note.
      const forget = noteLocalNode(adminUrl, platform.adminPort, path.join(dataDir, 'token'));
      const stopWatching = settingValue<boolean>(config, 'watch') ? watchApp(dir, platform, io) : undefined;
      const stopReloads = reloadsConfig(platform, config, () => nodeConfigOf(cmd, 'up', ownsData ? dataDir : undefined));
      await runUntilSignal(platform, stopped, async () => {
        stopReloads();
        stopWatching?.();
        forget();
        if (ownsData) await rm(dataDir, { recursive: true, force: true });
      });
    });

  addNodeOptions(program.command('serve').description('run a long-lived node; deploy to it with `lamplighter deploy`'), 'serve')
    .action(async (_options: unknown, cmd: Command) => {
      installExitHook({ signals: [] }); // SIGINT/SIGTERM stop gracefully below; the hook stays the last resort on exit.
      const config = await nodeConfigOf(cmd, 'serve', DEFAULT_DATA_DIR);
      const dataDir = settingValue<string>(config, 'data')!;
      const platform = await Platform.start(platformOptionsOf(config, { dataDir }));
      const stopped = stopSignal(io);
      const host = settingValue<string>(config, 'host')!;
      const adminHost = urlHost(settingValue<string>(config, 'admin_host')!);
      let closeKeda = async (): Promise<void> => {};
      const kedaPort = settingValue<number>(config, 'keda_port');
      if (kedaPort !== undefined) {
        const keda = await platform.startKeda(kedaPort, host);
        closeKeda = () => keda.close();
        io.out(`KEDA external scaler on ${host}:${keda.port}`);
      }
      const cluster = settingValue<string>(config, 'cluster');
      if (cluster !== undefined) io.out(`Joined the cluster at ${cluster} as node '${platform.nodeName}'`);
      io.out(`Lamplighter serving on ${platform.scheme}://${host}:${platform.port}; admin API on ${platform.adminScheme}://${adminHost}:${platform.adminPort} (token in ${path.join(dataDir, 'token')})`);
      if (platform.redirectPort) io.out(`Redirecting http://${host}:${platform.redirectPort} to HTTPS`);
      describeRoutes(platform, host, io);
      io.out(`Dashboard: ${platform.adminScheme}://${adminHost}:${platform.adminPort}/ui`);
      const stopReloads = reloadsConfig(platform, config, () => nodeConfigOf(cmd, 'serve', DEFAULT_DATA_DIR));
      await runUntilSignal(platform, stopped, async () => {
        stopReloads();
        await closeKeda();
      });
    });
}
