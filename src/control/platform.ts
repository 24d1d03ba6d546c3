// A Lamplighter node's lifecycle: store, sandbox pool, gateway, admin API and scaler loop, started and closed together.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createBreakerGate } from '../admission/index.js';
import { PlatformDefaults, platformLimitDefaults, type LimitDefaults } from '../config/index.js';
import { joinCluster, type ClusterSettings, type ClusterView, type JoinedCluster } from '../cluster/index.js';
import type { Dispatcher } from '../dispatch/index.js';
import { Gateway } from '../gateway/index.js';
import { createLogger, FunctionLogs, Metrics, natsLogSink, otlpHeaders, otlpLogSink, otlpLogsEndpoint, type FunctionLogsOptions, type LogFormat, type Logger } from '../observability/index.js';
import { SandboxPool } from '../runtime/wasm/index.js';
import { DEFAULT_NODE_COMPONENT_WORKERS, WorkerBudget } from '../runtime/component/index.js';
import { FileStore, writeFileAtomic, type ArtifactStore, type DamageReport, type Revision, type StoreFs, type WriteFailure } from '../store/index.js';
import { startKedaServer, type DemandSource, type KedaServer } from '../keda/index.js';
import { decideScale } from '../scaler/index.js';
import { EnvironmentVariables, FileVariables, type ClusterVariables } from '../variables/index.js';
import { RequestTracer, type TracingOptions } from '../tracing/index.js';
import { startHttpsRedirect, TlsCertificates, type CertificateFiles, type HttpsRedirect, type TlsReloadResult } from '../tls/index.js';
import { startAdminApi } from './admin-api.js';
import { appStatuses, functionStatus, type AppStatus, type FunctionStatus } from './app-status.js';
import { Deployments, type DeployRequest, type DeployResult } from './deployments.js';
import { inspectNode, type NodeInspection } from './node-inspection.js';
import { NodeProfiler } from './node-profiler.js';

/** What a reload did: settings applied live, and settings whose new value needs a restart. */
export interface ConfigReport {
  applied: string[];
  restartNeeded: string[];
  /** Certificate files read again: those now served, and those whose new contents could not be used. */
  certificates?: TlsReloadResult;
}

/** The node's settings as the admin API shows and reloads them; set by the command that started it. */
export interface ConfigControl {
  show(): unknown;
  reload(): Promise<ConfigReport>;
}

/** Options for {@link Platform.start}. */
export interface PlatformOptions {
  /** Data directory (artifacts, revisions, admin token). */
  dataDir: string;
  /** Gateway port; 0 picks a free one. @default PlatformDefaults.port */
  port?: number;
  /** Admin API port; 0 picks a free one, null disables it. @default PlatformDefaults.adminPort */
  adminPort?: number | null;
  /** Bind address of the gateway. @default PlatformDefaults.host */
  host?: string;
  /**
   * Bind address of the admin API and /metrics, apart from the gateway's so that serving on a
   * public address does not expose them. @default PlatformDefaults.adminHost (loopback)
   */
  adminHost?: string;
  /** The node's name in a cluster. @default the host name */
  nodeName?: string;
  /** Joins a cluster through NATS (`serve --cluster`); without it the node is embedded. @default undefined */
  cluster?: ClusterSettings;
  /** In a cluster, publish function output to NATS (`lamplighter.logs.<function>`). @default false */
  forwardLogs?: boolean;
  /**
   * OTLP/HTTP base endpoint (`http://collector:4318`): function output goes to its /v1/logs.
   * @default OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, then OTEL_EXPORTER_OTLP_ENDPOINT; none without them
   */
  otlpEndpoint?: string;
  /** A TOML file of `name = "value"` giving app variables their values, after the environment's. @default none */
  variablesFile?: string;
  /** Sandbox worker threads. @default max(2, cores) */
  sandboxWorkers?: number;
  /** Runs sent to one sandbox worker ahead of its answers. @default SandboxPool's default */
  sandboxPipeline?: number;
  /** Sandbox workers at most, the extra ones started while every worker is held included. @default 2 * sandboxWorkers + 1 */
  sandboxMaxWorkers?: number;
  /** How often the scaler reconciles every function, in ms. @default 1000 */
  scaleIntervalMs?: number;
  /** Log level of the node's JSON log. @default 'info' */
  logLevel?: string;
  /** Format of the node's log. @default $LAMPLIGHTER_LOG_FORMAT, then 'json' */
  logFormat?: LogFormat;
  /** Rotation and buffering of the function log files in `<dataDir>/logs`. @default FunctionLogDefaults */
  functionLogs?: Pick<FunctionLogsOptions, 'maxBytes' | 'maxFiles' | 'bufferBytes' | 'fs'>;
  /** Export Node process metrics. @default true */
  processMetrics?: boolean;
  /** The node's JSON log. @default a pino logger to stderr at `logLevel` */
  logger?: Logger;
  /** The file system the store writes through; tests inject faults here. @default node:fs */
  storeFs?: StoreFs;
  /**
   * Runs after the restore and before the gateway listens: `lamplighter up` deploys its app here,
   * so no request finds the node without it. A rejection fails the start. @default undefined
   */
  beforeListen?: (platform: Platform) => Promise<void>;
  /** Traces requests and exports the spans over OTLP/HTTP (`--otlp-endpoint`); tracing is off without it. @default undefined */
  tracing?: TracingOptions;
  /** Serve the gateway over HTTPS (`--tls-cert`/`--tls-key`, `--http-redirect-port`). @default undefined (plain HTTP) */
  tls?: GatewayTlsSettings;
  /** Serve the admin API over HTTPS (`--admin-tls-cert`/`--admin-tls-key`). @default undefined (plain HTTP) */
  adminTls?: CertificateFiles;
  /** Limits for functions whose manifest sets none (`limits_*` settings). @default the platform's */
  limitDefaults?: LimitDefaults;
  /** Worker threads all component functions run between them (`component_workers`). @default DEFAULT_NODE_COMPONENT_WORKERS */
  componentWorkers?: number;
}

/** The gateway's certificates and its optional plain-HTTP redirect. */
export interface GatewayTlsSettings {
  /** Certificate and key files, in order: SNI picks among them, the first is the default. */
  certificates: CertificateFiles[];
  /** Also listen for plain HTTP on this port (on the gateway's host) and redirect it to HTTPS. @default undefined */
  redirectPort?: number;
  /** Time a client has to complete its TLS handshake. @default DEFAULT_HANDSHAKE_TIMEOUT_MS (10 s) */
  handshakeTimeoutMs?: number;
}

/** One node: serves deployed apps through its gateway and keeps them scaled. */
export class Platform {
  readonly metrics: Metrics;
  readonly logs: FunctionLogs;
  /** CPU profiles and heap snapshots of this node, one at a time. */
  readonly profiler = new NodeProfiler();
  /** Its settings and how to reload them, when the command that started it resolved them. */
  configControl: ConfigControl | undefined;
  readonly logger: Logger;
  readonly gateway: Gateway;
  readonly pool: SandboxPool;
  #tracer: RequestTracer | undefined;
  /** Stops each log forwarder now running (to NATS, to OTLP). */
  #logForwarding: Array<() => Promise<void>> = [];
  /** The telemetry settings in force, to tell a reload that changes nothing. */
  #telemetry: { otlpEndpoint: string | undefined; forwardLogs: boolean } = { otlpEndpoint: undefined, forwardLogs: false };
  readonly #deployments: Deployments;
  /** Limits of functions whose manifest sets none; read at each use, so changing it applies at once. */
  readonly #limitDefaults: LimitDefaults;
  private scaleTimer: NodeJS.Timeout | undefined;
  /** Port the gateway listens on. */
  port = 0;
  /** This node's name in the cluster and in `x-lamplighter-node`. */
  readonly nodeName: string;
  private readonly gatewayHost: string;
  /** Port the admin API listens on (0 when disabled). */
  adminPort = 0;
  /** Address the admin API is bound to; undefined when disabled. */
  adminAddress: AddressInfo | undefined;
  private admin: { close(): Promise<void> } | undefined;
  #tls: TlsCertificates | undefined;
  #adminTls: TlsCertificates | undefined;
  #redirect: HttpsRedirect | undefined;
  /** Port of the plain-HTTP redirect to HTTPS (0 when there is none). */
  redirectPort = 0;
  #stopWatch: (() => void) | undefined;
  private readonly activityListeners = new Set<(fn: string, active: boolean) => void>();
  private readonly lastActive = new Map<string, boolean>();

  /** The cluster this node joined; undefined when embedded. */
  #cluster: JoinedCluster | undefined;

  private constructor(
    readonly store: ArtifactStore,
    readonly token: string,
    options: PlatformOptions,
    cluster: JoinedCluster | undefined,
    logger: Logger,
  ) {
    this.logger = logger;
    this.#cluster = cluster;
    this.nodeName = options.nodeName ?? hostname();
    this.gatewayHost = options.host ?? PlatformDefaults.host;
    this.metrics = new Metrics({ processMetrics: options.processMetrics });
    this.logs = new FunctionLogs({
      ...options.functionLogs,
      dir: path.join(options.dataDir, 'logs'),
      events: {
        dropped: (fn, sink, count) => this.metrics.logLinesDropped(fn, sink, count),
        damaged: (fn, count) => this.metrics.logLinesDamaged(fn, count),
        notice: (level, fields, message) => this.logger[level](fields, message),
      },
    });
    this.#tracer = options.tracing && new RequestTracer(options.tracing, { metrics: this.metrics, logger: this.logger, nodeName: this.nodeName });
    this.gateway = new Gateway({ metrics: this.metrics, logger: this.logger, nodeName: cluster ? this.nodeName : undefined, tracer: this.#tracer });
    this.pool = new SandboxPool({ size: options.sandboxWorkers, pipeline: options.sandboxPipeline, maxWorkers: options.sandboxMaxWorkers });
    this.metrics.setSource({
      functions: () => this.functionFigures(),
      sandbox: () => this.pool.figures(),
      clusterNodes: () => (cluster ? cluster.node.nodeViews().filter((n) => n.healthy).length : 1),
    });
    const peersFor = cluster && ((fn: string, figures: () => Array<{ id: string; free: number; ready: boolean }>) => cluster.node.peersFor(fn, figures));
    this.#limitDefaults = { ...(options.limitDefaults ?? platformLimitDefaults()) };
    this.#deployments = new Deployments({
      store,
      pool: this.pool,
      gateway: this.gateway,
      logs: this.logs,
      logger: this.logger,
      metrics: this.metrics,
      peersFor,
      breakerFor: (spec) => {
        const gate = createBreakerGate(spec, { metrics: this.metrics });
        // In a cluster each key is also judged from every node's counts; closing the gate detaches it.
        if (gate && cluster) cluster.breakers.attach(gate);
        return gate;
      },
      filesRoot: path.join(options.dataDir, 'files'),
      limitDefaults: this.#limitDefaults,
      componentWorkers: new WorkerBudget(options.componentWorkers ?? DEFAULT_NODE_COMPONENT_WORKERS),
      variables: [new EnvironmentVariables(), ...(options.variablesFile ? [new FileVariables(options.variablesFile)] : []), ...(cluster ? [cluster.variables] : [])],
    });
  }

  /** Opens the data directory, restores every app's current revision and starts serving. */
  static async start(options: PlatformOptions): Promise<Platform> {
    // The store reports what it finds to the node, which exists once the store is open.
    let platform: Platform | undefined;
    const events = {
      damaged: (report: DamageReport) => platform?.storeDamaged(report),
      writeFailed: (failure: WriteFailure) => platform?.storeWriteFailed(failure),
    };
    const logger = options.logger ?? createLogger({ level: options.logLevel, format: options.logFormat });
    const nodeName = options.nodeName ?? hostname();
    let cluster: JoinedCluster | undefined;
    let store: ArtifactStore;
    if (options.cluster) {
      cluster = await joinCluster(nodeName, options.cluster, {
        store: events,
        onStatus: (event) => logger.info({ nats: event.type, data: event.data }, `NATS ${event.type}`),
        onDiscoveryEvent: (kind) => platform?.metrics.discoveryEvent(kind),
        onForward: (fn, outcome) => platform?.metrics.forwarded(fn, outcome),
        onBreakerEvent: (kind) => platform?.metrics.breakerClusterMessage(kind),
      });
      store = cluster.store;
    } else {
      store = await FileStore.open(options.dataDir, { fs: options.storeFs, events });
    }
    let token: string;
    try {
      token = await loadOrCreateToken(options.dataDir);
    } catch (err) {
      await cluster?.close();
      throw err;
    }
    platform = new Platform(store, token, { ...options, nodeName }, cluster, logger);
    platform.#forwardLogs(options.otlpEndpoint, options.forwardLogs === true);
    try {
      // Pointer changes from any node are followed from before the restore, so none falls between.
      const stopWatch = store.watch?.((change) => {
        platform!.#deployments.follow(change).catch((err: unknown) => logger.error({ app: change.app, err: (err as Error).message }, 'could not follow a change made in the cluster'));
      });
      if (stopWatch) platform.#stopWatch = stopWatch;
      // Certificates are checked before the restore: a bad file is refused without waiting for it.
      if (options.tls) platform.#tls = await TlsCertificates.load(options.tls.certificates, { logger, handshakeTimeoutMs: options.tls.handshakeTimeoutMs });
      if (options.adminTls) platform.#adminTls = await TlsCertificates.load([options.adminTls], { logger, flags: { cert: '--admin-tls-cert', key: '--admin-tls-key' } });
      await platform.#deployments.restore();
      await options.beforeListen?.(platform);
      const host = options.host ?? PlatformDefaults.host;
      platform.port = await platform.gateway.listen(options.port ?? PlatformDefaults.port, host, platform.#tls ? { tls: platform.#tls } : {});
      if (options.tls?.redirectPort !== undefined) {
        platform.#redirect = await startHttpsRedirect(options.tls.redirectPort, host, { httpsPort: platform.port });
        platform.redirectPort = platform.#redirect.port;
      }
      cluster?.node.announce(options.cluster?.advertise ?? `${advertisedHost(host)}:${platform.port}`);
      if (options.adminPort !== null) {
        const admin = await startAdminApi(platform, options.adminPort ?? PlatformDefaults.adminPort, options.adminHost ?? PlatformDefaults.adminHost, { tls: platform.#adminTls });
        platform.admin = admin;
        platform.adminPort = admin.port;
        platform.adminAddress = admin.address;
      }
    } catch (err) {
      await platform.close();
      throw err;
    }
    const interval = options.scaleIntervalMs ?? 1000;
    platform.scaleTimer = setInterval(() => platform.reconcile(), interval);
    platform.scaleTimer.unref();
    return platform;
  }

  /** The gateway's scheme: `https` when it serves TLS. */
  get scheme(): 'http' | 'https' {
    return this.#tls ? 'https' : 'http';
  }

  /** The admin API's scheme: `https` when it serves TLS. */
  get adminScheme(): 'http' | 'https' {
    return this.#adminTls ? 'https' : 'http';
  }

  /**
   * Reads the gateway's and the admin API's certificate files again (for SIGHUP or a config
   * reload; file changes are also picked up on their own). New connections get the new
   * certificates; a file that cannot be used is logged and its old certificate kept.
   */
  async reloadTls(): Promise<TlsReloadResult> {
    const results = await Promise.all([this.#tls?.reload(), this.#adminTls?.reload()]);
    return {
      reloaded: results.flatMap((r) => r?.reloaded ?? []),
      failed: results.flatMap((r) => r?.failed ?? []),
    };
  }

  /** Logs and counts a damaged file the store found. */
  private storeDamaged(report: DamageReport): void {
    this.metrics.storeDamagedFiles.inc({ kind: report.kind });
    this.logger.error({ kind: report.kind, file: report.file, reason: report.reason, movedTo: report.movedTo }, `damaged ${report.kind} in the store: ${report.file} ${report.reason}`);
  }

  /** Logs a write the store could not make (a full disk, an I/O error). */
  private storeWriteFailed(failure: WriteFailure): void {
    this.logger.error({ file: failure.file, code: failure.code, errorCode: failure.error.code }, failure.error.message);
  }

  /** Scales every function once (the scaler loop calls this every interval). */
  reconcile(): void {
    for (const app of this.#deployments.apps.values()) {
      for (const group of app.groups.values()) {
        const { active } = group.reconcile();
        const name = group.spec.name;
        if (this.lastActive.get(name) !== active) {
          this.lastActive.set(name, active);
          for (const listener of this.activityListeners) listener(name, active);
        }
      }
    }
  }

  /** The scaler's figures per function, as the KEDA external scaler reads them. */
  demandSource(): DemandSource {
    return {
      demand: (name) => {
        const group = this.group(name);
        if (!group) return undefined;
        const d = decideScale(group.scale, group.demand, performance.now());
        return { active: d.active, metric: d.metric, target: d.target, value: d.value };
      },
      onActivityChange: (listener) => {
        this.activityListeners.add(listener);
        return () => this.activityListeners.delete(listener);
      },
    };
  }

  /** Serves KEDA's external-scaler gRPC protocol for this node's functions. */
  async startKeda(port: number, host: string): Promise<KedaServer> {
    return startKedaServer(this.demandSource(), { port, host });
  }

  /**
   * Deploys a revision whose artifacts are already in the store; all or nothing. The same manifest
   * and artifacts as the revision serving (and intact in the store) commit nothing: `unchanged`.
   */
  deploy(request: DeployRequest): Promise<DeployResult> {
    return this.#deployments.deploy(request);
  }

  /** Uploads an app directory's artifacts and deploys it (used by `lamplighter up`). */
  deployDir(dir: string): Promise<DeployResult> {
    return this.#deployments.deployDir(dir);
  }

  /** Points an app back at an older revision (the one before the current by default). */
  rollback(name: string, to?: number): Promise<Revision> {
    return this.#deployments.rollback(name, to);
  }

  /** Removes an app: its routes go at once, its instances after in-flight requests. */
  remove(name: string): Promise<void> {
    return this.#deployments.remove(name);
  }

  /** Every app with its functions' state; apps restored from another revision, or not at all, say why. */
  list(): AppStatus[] {
    return appStatuses(this.#deployments.apps, this.#deployments.unserved);
  }

  /** One function's state, or undefined. */
  functionStatus(name: string): FunctionStatus | undefined {
    for (const app of this.#deployments.apps.values()) {
      const group = app.groups.get(name);
      if (group) return functionStatus(app, group);
    }
    return undefined;
  }

  /** The group serving a function, for tests and the KEDA server. */
  group(name: string): Dispatcher | undefined {
    return this.#deployments.group(name);
  }

  /** Function names of an app, or [name] when `name` is a function. */
  functionsOf(name: string): string[] | undefined {
    const app = this.#deployments.apps.get(name);
    if (app) return [...app.groups.keys()];
    return this.group(name) ? [name] : undefined;
  }

  /** The cluster's variables (set through any node); undefined on an embedded node. */
  get clusterVariables(): ClusterVariables | undefined {
    return this.#cluster?.variables;
  }

  /** The node's tracer; undefined when tracing is off. */
  get tracer(): RequestTracer | undefined {
    return this.#tracer;
  }

  /** Starts the log forwarders the settings ask for (NATS in a cluster, OTLP), stopping the ones running. */
  #forwardLogs(otlpEndpoint: string | undefined, forwardLogs: boolean): void {
    const stopping = this.#logForwarding;
    this.#logForwarding = [];
    // Lines already queued to the old sinks are sent (within their grace), without holding this.
    for (const stop of stopping) void stop().catch(() => undefined);
    const cluster = this.#cluster;
    if (cluster && forwardLogs) this.#logForwarding.push(this.logs.forward(natsLogSink(cluster.connection, { node: this.nodeName })));
    const logsUrl = otlpLogsEndpoint(otlpEndpoint);
    if (logsUrl) this.#logForwarding.push(this.logs.forward(otlpLogSink({ url: logsUrl, node: this.nodeName, serviceName: process.env.OTEL_SERVICE_NAME, headers: otlpHeaders() })));
    this.#telemetry = { otlpEndpoint, forwardLogs };
  }

  /**
   * Applies new telemetry settings without a restart (a reload): a new tracer for a new OTLP
   * endpoint (requests already started finish with the old one, which is then flushed and closed)
   * and the log forwarders again. False when nothing changed.
   */
  async reconfigureTelemetry(otlpEndpoint: string | undefined, forwardLogs: boolean, tracing: TracingOptions | undefined): Promise<boolean> {
    if (this.#telemetry.otlpEndpoint === otlpEndpoint && this.#telemetry.forwardLogs === forwardLogs) return false;
    const old = this.#tracer;
    this.#tracer = tracing && new RequestTracer(tracing, { metrics: this.metrics, logger: this.logger, nodeName: this.nodeName });
    this.gateway.setTracer(this.#tracer);
    this.#forwardLogs(otlpEndpoint, forwardLogs);
    await old?.close();
    return true;
  }

  /** Changes the limits of functions whose manifest sets none, at once (a reload); admitted requests keep their deadlines. */
  setLimitDefaults(next: LimitDefaults): void {
    Object.assign(this.#limitDefaults, next);
  }

  /** Changes the node's log level at once (a reload). */
  setLogLevel(level: string): void {
    this.logger.level = level;
  }

  /** What the node is doing now (`lamplighter inspect`); `fn` narrows it to one function. */
  inspect(fn?: string): NodeInspection {
    const cluster = this.#cluster;
    return inspectNode(
      {
        name: this.nodeName,
        apps: this.#deployments.apps,
        sandboxWorkers: () => this.pool.workerViews(),
        clusterNodes: () => cluster?.node.nodeViews(),
      },
      fn,
    );
  }

  /** The cluster as this node sees it; an embedded node is a cluster of one. */
  clusterView(): ClusterView {
    const cluster = this.#cluster;
    if (cluster) {
      const functions = [];
      for (const app of this.#deployments.apps.values()) for (const g of app.groups.values()) functions.push(cluster.node.functionView(g.spec.name, g.spec.scale.max));
      return { mode: 'cluster', node: this.nodeName, nodes: cluster.node.nodeViews(), functions };
    }
    const now = new Date().toISOString();
    const functions = [];
    for (const app of this.#deployments.apps.values()) {
      for (const g of app.groups.values()) {
        functions.push({ name: g.spec.name, max: g.spec.scale.max, instances: g.instanceFigures().map((i) => ({ node: this.nodeName, id: i.id, free: i.free })) });
      }
    }
    return {
      mode: 'embedded',
      node: this.nodeName,
      nodes: [{ name: this.nodeName, address: `${this.gatewayHost}:${this.port}`, healthy: true, lastHeartbeat: now, self: true, draining: false }],
      functions,
    };
  }

  private functionFigures(): Array<{ name: string; instances: number; pending: number; inFlight: number; memoryBytes: number }> {
    const out = [];
    for (const app of this.#deployments.apps.values()) {
      for (const g of app.groups.values()) out.push({ name: g.spec.name, instances: g.instanceCount, pending: g.pendingCount, inFlight: g.inFlightCount, memoryBytes: g.memoryBytes() });
    }
    return out;
  }

  /**
   * Stops serving: gateway, instances, sandbox workers. In a cluster the node first says it is
   * leaving and withdraws its instances, so peers stop forwarding here; requests in flight finish.
   */
  async close(): Promise<void> {
    if (this.scaleTimer) clearInterval(this.scaleTimer);
    this.#stopWatch?.();
    this.#cluster?.node.drain();
    await this.admin?.close();
    await this.#redirect?.close();
    await this.gateway.close();
    this.#tls?.close();
    this.#adminTls?.close();
    await this.#deployments.close();
    await this.pool.close();
    await this.logs.close();
    await this.#cluster?.close();
    // Last: the spans of the requests that just finished are sent before the node is gone.
    await this.#tracer?.close();
  }
}

/** The host peers reach a gateway bound to `host` at: the machine's name when it listens on every address. */
function advertisedHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return hostname();
  return host.includes(':') ? `[${host}]` : host;
}

/** Reads the admin token from the data directory, creating it on first start. */
async function loadOrCreateToken(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'token');
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (token) return token;
  } catch {
    // First start: fall through and create one.
  }
  const token = randomBytes(24).toString('base64url');
  await writeFileAtomic(file, `${token}\n`);
  return token;
}
