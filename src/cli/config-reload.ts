// Reloading a running node's settings: on SIGHUP, when its config file changes, or through
// POST /v1/config/reload. What can change live is applied; the rest is reported as needing a restart.
import { unwatchFile, watchFile } from 'node:fs';
import { configChanges, describeConfig, LIMIT_DEFAULT_SETTINGS, limitDefaultsFrom, type NodeConfig } from '../config/index.js';
import type { ConfigReport, Platform } from '../control/index.js';
import { tracingFromEnvironment } from '../tracing/index.js';

/** How often the config file is checked for changes, in ms. */
const FILE_CHECK_MS = 1000;

/**
 * Gives `platform` its config for `GET /v1/config` and `POST /v1/config/reload`, and reloads on
 * SIGHUP and on changes to the config file. `resolve` resolves the settings again (same flags,
 * the environment, the file as it is now). Returns the function that stops listening.
 */
export function reloadsConfig(platform: Platform, initial: NodeConfig, resolve: () => Promise<NodeConfig>): () => void {
  let current = initial;
  let running: Promise<ConfigReport> | undefined;

  const reload = async (): Promise<ConfigReport> => {
    const next = await resolve();
    const { live, restart } = configChanges(current, next);
    const applied: string[] = [];
    const settings = new Map(current.settings);
    for (const key of live) {
      const setting = next.settings.get(key)!;
      if (key === 'log_level') platform.setLogLevel(String(setting.value ?? 'info'));
      settings.set(key, setting);
      applied.push(key);
    }
    if (live.some((key) => LIMIT_DEFAULT_SETTINGS.some((l) => l.setting === key))) {
      platform.setLimitDefaults(limitDefaultsFrom((key) => settings.get(key)?.value as number | undefined));
    }
    if (live.includes('otlp_endpoint') || live.includes('forward_logs')) {
      // Traces and function logs go where the settings now say; the old exporter is flushed.
      const endpoint = settings.get('otlp_endpoint')?.value as string | undefined;
      await platform.reconfigureTelemetry(endpoint, settings.get('forward_logs')?.value === true, tracingFromEnvironment(endpoint));
    }
    // The certificate files are read again on every reload: a renewal keeps their names. New
    // connections get what changed; a file that cannot be used keeps its old certificate.
    const certificates = await platform.reloadTls();
    // What needs a restart keeps showing the value in force, with what the sources say now reported.
    current = { ...current, file: next.file, settings };
    const report: ConfigReport = { applied, restartNeeded: restart, ...(certificates.reloaded.length + certificates.failed.length > 0 ? { certificates } : {}) };
    if (applied.length > 0 || restart.length > 0) platform.logger.info({ applied, restartNeeded: restart }, 'configuration reloaded');
    return report;
  };
  // One reload at a time; a request while one runs shares its answer.
  const reloadOnce = (): Promise<ConfigReport> => {
    running ??= reload().finally(() => (running = undefined));
    return running;
  };

  platform.configControl = { show: () => describeConfig(current), reload: reloadOnce };
  const onSignal = (): void => {
    reloadOnce().catch((err: unknown) => platform.logger.error({ err: (err as Error).message }, `configuration not reloaded: ${(err as Error).message}`));
  };
  process.on('SIGHUP', onSignal);
  const file = initial.file;
  if (file) watchFile(file, { interval: FILE_CHECK_MS, persistent: false }, (now, before) => {
    if (now.mtimeMs !== before.mtimeMs || now.size !== before.size) onSignal();
  });
  return () => {
    process.off('SIGHUP', onSignal);
    if (file) unwatchFile(file);
    platform.configControl = undefined;
  };
}
