// The flags of `up` and `serve`, made from the node settings' schema, and the PlatformOptions
// their resolved values make.
import type { Command } from 'commander';
import { NODE_SETTINGS, flagOf, envOf, limitDefaultsFrom, resolveNodeConfig, settingFlagOf, settingValue, settingsOf, type NodeCommand, type NodeConfig } from '../config/index.js';
import { parseClusterUrls, type ClusterSettings } from '../cluster/index.js';
import type { GatewayTlsSettings, PlatformOptions } from '../control/index.js';
import { tracingFromEnvironment } from '../tracing/index.js';

/** A setting's key as commander names its option value: `admin_port` → `adminPort`. */
const attributeOf = (key: string): string => key.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());

/** Switches: settings whose value is true or false. */
const SWITCHES = new Set(NODE_SETTINGS.filter((s) => s.valueName === undefined).map((s) => s.key));

/** Adds a command's node settings as flags, each naming its variable, and `--config FILE`. */
export function addNodeOptions(cmd: Command, command: NodeCommand): Command {
  cmd.option('--config <file>', 'node config file (TOML, the settings below by their snake_case names; default: <data>/lamplighter.node.toml if present; or LAMPLIGHTER_CONFIG)');
  for (const def of settingsOf(command)) {
    const shown = def.default !== undefined && typeof def.default !== 'boolean' ? `; default ${def.defaultText ?? String(def.default)}` : '';
    const help = `${def.help} (${envOf(def.key)}${shown})`;
    if (def.negatable) cmd.option(settingFlagOf(def), `do not ${def.help} (${envOf(def.key)}=false)`);
    else if (SWITCHES.has(def.key)) cmd.option(flagOf(def.key), help);
    else if (def.list) cmd.option(`${flagOf(def.key)} <${def.valueName}>`, `${help}; repeatable`, (value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    else cmd.option(`${flagOf(def.key)} <${def.valueName}>`, help);
  }
  return cmd;
}

/** The node settings given on the command line, by key; flags left out are absent. */
export function givenFlags(cmd: Command, command: NodeCommand): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const def of settingsOf(command)) {
    const attribute = attributeOf(def.key);
    if (cmd.getOptionValueSource(attribute) === 'cli') flags[def.key] = cmd.getOptionValue(attribute);
  }
  return flags;
}

/** Resolves a command's settings from its flags, the environment, the config file and the defaults. */
export function nodeConfigOf(cmd: Command, command: NodeCommand, defaultData?: string): Promise<NodeConfig> {
  const configFile = cmd.getOptionValue('config') as string | undefined;
  return resolveNodeConfig({ command, flags: givenFlags(cmd, command), configFile, defaultData });
}

/** The cluster a `serve` joins; undefined (embedded) without `cluster`. NATS settings without it are refused. */
function clusterSettings(config: NodeConfig): ClusterSettings | undefined {
  const value = <T extends string | number>(key: string): T | undefined => settingValue<T>(config, key);
  const urls = value<string>('cluster');
  if (urls === undefined) {
    const stray = ['nats_ca', 'nats_cert', 'nats_key', 'nats_creds', 'nats_token', 'advertise'].find((k) => config.settings.get(k)?.value !== undefined);
    const source = stray === undefined ? undefined : config.settings.get(stray)!.from;
    if (stray) throw new Error(`${source ?? flagOf(stray)} only applies with cluster (--cluster nats://HOST:PORT)`);
    return undefined;
  }
  const downAfterMs = value<number>('down_after')!;
  return {
    servers: parseClusterUrls(urls),
    ca: value('nats_ca'),
    cert: value('nats_cert'),
    key: value('nats_key'),
    creds: value('nats_creds'),
    token: value('nats_token'),
    advertise: value('advertise'),
    // Heartbeats three times per drop time: one lost heartbeat never drops a node.
    timing: { heartbeatMs: Math.floor(downAfterMs / 3), downAfterMs },
    replicas: value('replicas'),
  };
}

/** The gateway's certificates from tls_cert/tls_key pairs, in order, and the redirect port. */
function gatewayTls(config: NodeConfig): GatewayTlsSettings | undefined {
  const certs = settingValue<string[]>(config, 'tls_cert') ?? [];
  const keys = settingValue<string[]>(config, 'tls_key') ?? [];
  if (certs.length !== keys.length) {
    throw new Error(`tls_cert and tls_key come in pairs, one key for each certificate (--tls-cert FILE --tls-key FILE); got ${certs.length} certificate(s) and ${keys.length} key(s)`);
  }
  const redirectPort = settingValue<number>(config, 'http_redirect_port');
  if (certs.length === 0) {
    if (redirectPort !== undefined) throw new Error('http_redirect_port (--http-redirect-port) only applies with --tls-cert FILE --tls-key FILE');
    return undefined;
  }
  return { certificates: certs.map((cert, i) => ({ cert, key: keys[i]! })), redirectPort };
}

function adminTls(config: NodeConfig): { cert: string; key: string } | undefined {
  const cert = settingValue<string>(config, 'admin_tls_cert');
  const key = settingValue<string>(config, 'admin_tls_key');
  if ((cert === undefined) !== (key === undefined)) throw new Error('admin_tls_cert and admin_tls_key go together (--admin-tls-cert and --admin-tls-key): give both, or neither');
  return cert === undefined ? undefined : { cert, key: key! };
}

/** The PlatformOptions a resolved config makes; `extra` adds what the command itself decides. */
export function platformOptionsOf(config: NodeConfig, extra: Partial<PlatformOptions> & { dataDir: string }): PlatformOptions {
  const value = <T extends string | number | boolean>(key: string): T | undefined => settingValue<T>(config, key);
  const otlp = value<string>('otlp_endpoint');
  return {
    cluster: config.command === 'serve' ? clusterSettings(config) : undefined,
    forwardLogs: value<boolean>('forward_logs') === true,
    nodeName: value('node_name'),
    port: value('port'),
    adminPort: value('admin_port'),
    host: value('host'),
    adminHost: value('admin_host'),
    sandboxWorkers: value('workers'),
    componentWorkers: value('component_workers'),
    variablesFile: value('variables_file'),
    logLevel: value('log_level') ?? (config.command === 'up' ? 'warn' : 'info'),
    logFormat: value('log_format'),
    functionLogs: { maxBytes: value('log_max_size'), maxFiles: value('log_max_files') },
    tracing: tracingFromEnvironment(otlp),
    otlpEndpoint: otlp,
    tls: gatewayTls(config),
    adminTls: adminTls(config),
    limitDefaults: limitDefaultsFrom((key) => value<number>(key)),
    ...extra,
  };
}
