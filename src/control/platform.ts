// A Lamplighter node: store, sandbox pool, gateway, scaler loop, and the deploy/rollback/remove operations.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PlatformDefaults } from '../config/index.js';
import { FunctionGroup } from '../dispatch/index.js';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { Gateway, RouteTable, type GatewayTarget, type RouteEntry } from '../gateway/index.js';
import { loadManifest, parseManifest, type AppManifest, type FunctionSpec } from '../manifest/index.js';
import { createLogger, FunctionLogs, Metrics, type Logger } from '../observability/index.js';
import { SandboxPool } from '../runtime/wasm/index.js';
import { FileStore, writeFileAtomic, type ArtifactStore, type Revision } from '../store/index.js';
import { startKedaServer, type DemandSource, type KedaServer } from '../keda/index.js';
import { decideScale } from '../scaler/index.js';
import { startAdminApi } from './admin-api.js';
import { buildFactory } from './runtimes.js';

/** Options for {@link Platform.start}. */
export interface PlatformOptions {
  /** Data directory (artifacts, revisions, admin token). */
  dataDir: string;
  /** Gateway port; 0 picks a free one. @default PlatformDefaults.port */
  port?: number;
  /** Admin API port; 0 picks a free one, null disables it. @default PlatformDefaults.adminPort */
  adminPort?: number | null;
  /** Bind address. @default PlatformDefaults.host */
  host?: string;
  /** Sandbox worker threads. @default max(2, cores) */
  sandboxWorkers?: number;
  /** Runs sent to one sandbox worker ahead of its answers. @default SandboxPool's default */
  sandboxPipeline?: number;
  /** How often the scaler reconciles every function, in ms. @default 1000 */
  scaleIntervalMs?: number;
  /** Log level of the node's JSON log. @default 'info' */
  logLevel?: string;
  /** Export Node process metrics. @default true */
  processMetrics?: boolean;
  /**
   * Runs after the restore and before the gateway listens: `lamplighter up` deploys its app here,
   * so no request finds the node without it. A rejection fails the start. @default undefined
   */
  beforeListen?: (platform: Platform) => Promise<void>;
}

/** What a deploy sends: the manifest text and the digests of the artifacts it names. */
export interface DeployRequest {
  manifest: string;
  /** Artifact path as named in the manifest → sha256 digest (already uploaded). */
  artifacts: Record<string, string>;
  /** Directory the app was deployed from (process functions run there). */
  appDir?: string;
}

/** A function as `ls` shows it. */
export interface FunctionStatus {
  name: string;
  app: string;
  runtime: string;
  routes: string[];
  instances: number;
  ready: number;
  pending: number;
  inFlight: number;
  status: 'lit' | 'idle' | 'failing';
  lastFailure: string | undefined;
  scale: FunctionSpec['scale'];
  limits: FunctionSpec['limits'];
}

/** An app as `ls` shows it. */
export interface AppStatus {
  name: string;
  revision: number;
  createdAt: string;
  functions: FunctionStatus[];
}

interface DeployedApp {
  manifest: AppManifest;
  revision: Revision;
  groups: Map<string, FunctionGroup>;
}

/** One node: serves deployed apps through its gateway and keeps them scaled. */
export class Platform {
  readonly metrics: Metrics;
  readonly logs = new FunctionLogs();
  readonly logger: Logger;
  readonly gateway: Gateway;
  readonly pool: SandboxPool;
  private readonly apps = new Map<string, DeployedApp>();
  private scaleTimer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Port the gateway listens on. */
  port = 0;
  /** Port the admin API listens on (0 when disabled). */
  adminPort = 0;
  private admin: { close(): Promise<void> } | undefined;
  private readonly activityListeners = new Set<(fn: string, active: boolean) => void>();
  private readonly lastActive = new Map<string, boolean>();

  private constructor(
    readonly store: ArtifactStore,
    readonly token: string,
    options: PlatformOptions,
  ) {
    this.logger = createLogger({ level: options.logLevel });
    this.metrics = new Metrics({ processMetrics: options.processMetrics });
    this.metrics.setSource({ functions: () => this.functionFigures() });
    this.gateway = new Gateway({ metrics: this.metrics, logger: this.logger });
    this.pool = new SandboxPool({ size: options.sandboxWorkers, pipeline: options.sandboxPipeline });
  }

  /** Opens the data directory, restores every app's current revision and starts serving. */
  static async start(options: PlatformOptions): Promise<Platform> {
    const store = await FileStore.open(options.dataDir);
    const token = await loadOrCreateToken(options.dataDir);
    const platform = new Platform(store, token, options);
    try {
      await platform.restore();
      await options.beforeListen?.(platform);
      const host = options.host ?? PlatformDefaults.host;
      platform.port = await platform.gateway.listen(options.port ?? PlatformDefaults.port, host);
      if (options.adminPort !== null) {
        const admin = await startAdminApi(platform, options.adminPort ?? PlatformDefaults.adminPort, host);
        platform.admin = admin;
        platform.adminPort = admin.port;
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

  private async restore(): Promise<void> {
    for (const name of await this.store.apps()) {
      const revision = await this.store.current(name);
      if (!revision) continue;
      try {
        const app = await this.build(revision);
        this.apps.set(name, app);
        this.logger.info({ app: name, revision: revision.number }, 'restored app');
      } catch (err) {
        this.logger.error({ app: name, revision: revision.number, err: (err as Error).message }, 'could not restore app');
      }
    }
    this.swapRoutes();
  }

  /** Runs deploy-type operations one at a time, so two deploys never interleave. */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Scales every function once (the scaler loop calls this every interval). */
  reconcile(): void {
    for (const app of this.apps.values()) {
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

  /** Builds the groups of one revision without touching what is being served. */
  private async build(revision: Revision): Promise<DeployedApp> {
    const manifest = parseManifest(revision.manifest, `app '${revision.app}' revision ${revision.number}`);
    const groups = new Map<string, FunctionGroup>();
    const artifactDigest = (name: string): string => {
      const digest = revision.artifacts[name];
      if (!digest) throw new LamplighterError(ErrorCodes.MODULE_INVALID, `artifact '${name}' was not uploaded with the deploy`);
      return digest;
    };
    try {
      for (const spec of manifest.functions) {
        const factory = await buildFactory(spec, {
          pool: this.pool,
          appDir: revision.appDir,
          artifactDigest,
          artifact: async (name) => {
            const digest = artifactDigest(name);
            try {
              return await this.store.getBlob(digest);
            } catch (err) {
              if (err instanceof LamplighterError && err.code === ErrorCodes.NOT_FOUND) {
                throw new LamplighterError(ErrorCodes.MODULE_INVALID, `artifact '${name}' (sha256 ${digest}) is missing from the store`, { cause: err });
              }
              throw err;
            }
          },
          log: (stream, text) => this.logs.write(spec.name, stream, text),
        });
        groups.set(
          spec.name,
          new FunctionGroup(spec, factory, {
            metrics: this.metrics,
            log: (text) => {
              this.logs.write(spec.name, 'platform', text);
              this.logger.warn({ function: spec.name }, text);
            },
          }),
        );
      }
    } catch (err) {
      await Promise.all([...groups.values()].map((g) => g.stop()));
      throw err;
    }
    return { manifest, revision, groups };
  }

  private routeEntries(except?: string, extra?: DeployedApp): Array<RouteEntry<GatewayTarget>> {
    const entries: Array<RouteEntry<GatewayTarget>> = [];
    const add = (app: DeployedApp): void => {
      for (const group of app.groups.values()) {
        for (const pattern of group.spec.routes) entries.push({ pattern, hosts: group.spec.hosts, target: group });
      }
    };
    for (const [name, app] of this.apps) if (name !== except) add(app);
    if (extra) add(extra);
    return entries;
  }

  private swapRoutes(): void {
    this.gateway.setRoutes(new RouteTable(this.routeEntries(), describeTarget));
  }

  /** Checks that a manifest can join the others: unique function names and routes. */
  private checkConflicts(manifest: AppManifest): void {
    for (const [name, app] of this.apps) {
      if (name === manifest.name) continue;
      for (const fn of manifest.functions) {
        if (app.groups.has(fn.name)) {
          throw new LamplighterError(ErrorCodes.DEPLOY_CONFLICT, `Cannot deploy app '${manifest.name}': function '${fn.name}' is already deployed by app '${name}'`);
        }
      }
    }
  }

  /** Deploys a revision whose artifacts are already in the store; all or nothing. */
  deploy(request: DeployRequest): Promise<Revision> {
    return this.serial(async () => {
      const manifest = parseManifest(request.manifest);
      this.checkConflicts(manifest);
      for (const fn of manifest.functions) {
        if (fn.source && !request.artifacts[fn.source]) {
          throw new LamplighterError(ErrorCodes.MODULE_INVALID, `Cannot deploy function '${fn.name}': artifact '${fn.source}' was not uploaded with the deploy`);
        }
      }
      const draft: Revision = { app: manifest.name, number: 0, createdAt: '', manifest: request.manifest, artifacts: request.artifacts, appDir: request.appDir };
      const built = await this.build(draft);
      await this.checkRoutes(manifest.name, built);
      let revision: Revision;
      try {
        revision = await this.store.commit(manifest.name, { manifest: request.manifest, artifacts: request.artifacts, appDir: request.appDir });
      } catch (err) {
        await stopGroups(built);
        throw err;
      }
      built.revision = revision;
      this.install(manifest.name, built);
      this.logger.info({ app: manifest.name, revision: revision.number }, 'deployed');
      return revision;
    });
  }

  /** Checks a built app's routes against every other app's before anything is committed. */
  private async checkRoutes(name: string, built: DeployedApp): Promise<void> {
    try {
      new RouteTable(this.routeEntries(name, built), describeTarget);
    } catch (err) {
      await stopGroups(built);
      throw new LamplighterError(ErrorCodes.DEPLOY_CONFLICT, `Cannot deploy app '${name}': ${(err as Error).message}`);
    }
  }

  private install(name: string, app: DeployedApp): void {
    const old = this.apps.get(name);
    // The table is built before anything changes, so a failure leaves the node as it was.
    const table = new RouteTable(this.routeEntries(name, app), describeTarget);
    this.apps.set(name, app);
    this.gateway.setRoutes(table);
    // Requests already routed to the old revision finish there; then its instances go out.
    if (old) void stopGroups(old);
    if (old) for (const fn of old.groups.keys()) if (!app.groups.has(fn)) this.logs.forget(fn);
  }

  /** Uploads an app directory's artifacts and deploys it (used by `lamplighter up`). */
  async deployDir(dir: string): Promise<Revision> {
    const { manifest, dir: appDir, text } = await loadManifest(dir);
    const artifacts: Record<string, string> = {};
    for (const fn of manifest.functions) {
      if (!fn.source || artifacts[fn.source]) continue;
      let bytes: Buffer;
      try {
        bytes = await readFile(path.resolve(appDir, fn.source));
      } catch (err) {
        throw new LamplighterError(ErrorCodes.MODULE_INVALID, `Cannot deploy function '${fn.name}': cannot read ${fn.source}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
      artifacts[fn.source] = await this.store.putBlob(bytes);
    }
    return this.deploy({ manifest: text, artifacts, appDir });
  }

  /** Points an app back at an older revision (the one before the current by default). */
  rollback(name: string, to?: number): Promise<Revision> {
    return this.serial(async () => {
      const current = this.apps.get(name);
      if (!current) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No app named '${name}'`);
      const revisions = await this.store.revisions(name);
      const target = to === undefined
        ? revisions.filter((r) => r.number < current.revision.number).at(-1)
        : revisions.find((r) => r.number === to);
      if (!target) {
        throw new LamplighterError(ErrorCodes.NOT_FOUND, to === undefined ? `App '${name}' has no revision before ${current.revision.number}` : `App '${name}' has no revision ${to}`);
      }
      const built = await this.build(target);
      // The older revision must still fit beside the apps deployed since.
      try {
        this.checkConflicts(built.manifest);
      } catch (err) {
        await stopGroups(built);
        throw err;
      }
      await this.checkRoutes(name, built);
      await this.store.setCurrent(name, target.number);
      this.install(name, built);
      this.logger.info({ app: name, revision: target.number }, 'rolled back');
      return target;
    });
  }

  /** Removes an app: its routes go at once, its instances after in-flight requests. */
  remove(name: string): Promise<void> {
    return this.serial(async () => {
      const app = this.apps.get(name);
      if (!app) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No app named '${name}'`);
      await this.store.removeApp(name);
      this.apps.delete(name);
      this.swapRoutes();
      for (const fn of app.groups.keys()) this.logs.forget(fn);
      await stopGroups(app);
    });
  }

  private status(app: DeployedApp, group: FunctionGroup): FunctionStatus {
    const instances = group.instanceCount;
    return {
      name: group.spec.name,
      app: app.manifest.name,
      runtime: group.spec.runtime,
      routes: group.spec.routes,
      instances,
      ready: group.readyCount,
      pending: group.pendingCount,
      inFlight: group.inFlightCount,
      status: group.lastFailure !== undefined && group.readyCount === 0 ? 'failing' : instances > 0 ? 'lit' : 'idle',
      lastFailure: group.lastFailure,
      scale: group.spec.scale,
      limits: group.spec.limits,
    };
  }

  /** Every app with its functions' state. */
  list(): AppStatus[] {
    return [...this.apps.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, app]) => ({
      name,
      revision: app.revision.number,
      createdAt: app.revision.createdAt,
      functions: [...app.groups.values()].map((g) => this.status(app, g)),
    }));
  }

  /** One function's state, or undefined. */
  functionStatus(name: string): FunctionStatus | undefined {
    for (const app of this.apps.values()) {
      const group = app.groups.get(name);
      if (group) return this.status(app, group);
    }
    return undefined;
  }

  /** The group serving a function, for tests and the KEDA server. */
  group(name: string): FunctionGroup | undefined {
    for (const app of this.apps.values()) {
      const group = app.groups.get(name);
      if (group) return group;
    }
    return undefined;
  }

  /** Function names of an app, or [name] when `name` is a function. */
  functionsOf(name: string): string[] | undefined {
    const app = this.apps.get(name);
    if (app) return [...app.groups.keys()];
    return this.group(name) ? [name] : undefined;
  }

  private functionFigures(): Array<{ name: string; instances: number; pending: number; inFlight: number }> {
    const out = [];
    for (const app of this.apps.values()) {
      for (const g of app.groups.values()) out.push({ name: g.spec.name, instances: g.instanceCount, pending: g.pendingCount, inFlight: g.inFlightCount });
    }
    return out;
  }

  /** Stops serving: gateway, instances, sandbox workers. */
  async close(): Promise<void> {
    if (this.scaleTimer) clearInterval(this.scaleTimer);
    await this.admin?.close();
    await this.gateway.close();
    await Promise.all([...this.apps.values()].map(stopGroups));
    this.apps.clear();
    await this.pool.close();
  }
}

function describeTarget(target: GatewayTarget): string {
  return `function '${target.spec.name}'`;
}

async function stopGroups(app: DeployedApp): Promise<void> {
  await Promise.all([...app.groups.values()].map((g) => g.stop()));
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
