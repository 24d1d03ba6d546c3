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
import { FileStore, writeFileAtomic, type ArtifactStore, type DamageReport, type Revision, type StoreFs, type WriteFailure } from '../store/index.js';
import { startKedaServer, type DemandSource, type KedaServer } from '../keda/index.js';
import { decideScale } from '../scaler/index.js';
import { startAdminApi } from './admin-api.js';
import { restoreNote, restoreOrder, type RestoreNote } from './restore-plan.js';
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
  /** The node's JSON log. @default a pino logger to stderr at `logLevel` */
  logger?: Logger;
  /** The file system the store writes through; tests inject faults here. @default node:fs */
  storeFs?: StoreFs;
}

/** What a deploy sends: the manifest text and the digests of the artifacts it names. */
export interface DeployRequest {
  manifest: string;
  /** Artifact path as named in the manifest → sha256 digest (already uploaded). */
  artifacts: Record<string, string>;
  /** Directory the app was deployed from (process functions run there). */
  appDir?: string;
}

/** What a deploy did: committed a new revision, or found the same one already serving. */
export interface DeployResult {
  revision: Revision;
  /** True when the same manifest and artifacts already serve: no revision was committed. */
  unchanged: boolean;
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
  /** Set when the node serves another revision than the app's current one (damage found at start), or none. */
  restored?: RestoreNote;
}

interface DeployedApp {
  manifest: AppManifest;
  revision: Revision;
  groups: Map<string, FunctionGroup>;
  /** Set when this revision was restored in place of a damaged or failing current one. */
  restored?: RestoreNote;
}

/** One node: serves deployed apps through its gateway and keeps them scaled. */
export class Platform {
  readonly metrics: Metrics;
  readonly logs = new FunctionLogs();
  readonly logger: Logger;
  readonly gateway: Gateway;
  readonly pool: SandboxPool;
  private readonly apps = new Map<string, DeployedApp>();
  /** Apps in the store of which no revision could be restored: listed, never silently absent. */
  readonly #unserved = new Map<string, RestoreNote>();
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
    this.logger = options.logger ?? createLogger({ level: options.logLevel });
    this.metrics = new Metrics({ processMetrics: options.processMetrics });
    this.metrics.setSource({ functions: () => this.functionFigures() });
    this.gateway = new Gateway({ metrics: this.metrics, logger: this.logger });
    this.pool = new SandboxPool({ size: options.sandboxWorkers, pipeline: options.sandboxPipeline });
  }

  /** Opens the data directory, restores every app's current revision and starts serving. */
  static async start(options: PlatformOptions): Promise<Platform> {
    // The store reports what it finds to the node, which exists once the store is open.
    let platform: Platform | undefined;
    const store = await FileStore.open(options.dataDir, {
      fs: options.storeFs,
      events: {
        damaged: (report) => platform?.storeDamaged(report),
        writeFailed: (failure) => platform?.storeWriteFailed(failure),
      },
    });
    const token = await loadOrCreateToken(options.dataDir);
    platform = new Platform(store, token, options);
    try {
      await platform.restore();
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

  /** Logs and counts a damaged file the store found. */
  private storeDamaged(report: DamageReport): void {
    this.metrics.storeDamagedFiles.inc({ kind: report.kind });
    this.logger.error({ kind: report.kind, file: report.file, reason: report.reason, movedTo: report.movedTo }, `damaged ${report.kind} in the store: ${report.file} ${report.reason}`);
  }

  /** Logs a write the store could not make (a full disk, an I/O error). */
  private storeWriteFailed(failure: WriteFailure): void {
    this.logger.error({ file: failure.file, code: failure.code, errorCode: failure.error.code }, failure.error.message);
  }

  /**
   * Serves every app in the store at its current revision; when that revision is damaged or does
   * not build, at the newest intact one that does, saying so in `ls` and the log.
   */
  private async restore(): Promise<void> {
    for (const name of await this.store.apps()) {
      const record = await this.store.record(name);
      if (!record) continue;
      let problem = record.damage === undefined ? undefined : { damaged: true, reason: record.damage };
      let restored = false;
      for (const revision of restoreOrder(record)) {
        try {
          const app = await this.build(revision);
          await this.admit(name, app);
          if (problem) {
            app.restored = restoreNote(record, revision.number, problem);
            this.logger.error({ app: name, revision: revision.number, current: record.current }, `app '${name}' ${app.restored.message}`);
          } else {
            this.logger.info({ app: name, revision: revision.number }, 'restored app');
          }
          this.apps.set(name, app);
          restored = true;
          break;
        } catch (err) {
          const message = (err as Error).message;
          this.logger.error({ app: name, revision: revision.number, err: message }, `could not restore revision ${revision.number} of app '${name}'`);
          problem ??= { damaged: err instanceof LamplighterError && err.code === ErrorCodes.STORE_DAMAGED, reason: message };
        }
      }
      if (!restored) {
        const note = restoreNote(record, undefined, problem ?? { damaged: true, reason: 'it has no intact revision' });
        this.#unserved.set(name, note);
        this.logger.error({ app: name, current: record.current }, `app '${name}' ${note.message}`);
      }
    }
    this.swapRoutes();
  }

  /** Checks that a built app fits beside the others (function names, routes); stops it if not. */
  private async admit(name: string, built: DeployedApp): Promise<void> {
    try {
      this.checkConflicts(built.manifest);
    } catch (err) {
      await stopGroups(built);
      throw err;
    }
    await this.checkRoutes(name, built);
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
        const d = decideScale(group.spec.scale, group.demand, performance.now());
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
    // Every artifact is read and verified here, even one whose transpile is cached and not read again.
    const blobs = new Map<string, Buffer>();
    for (const [name, digest] of Object.entries(revision.artifacts)) {
      try {
        blobs.set(digest, await this.store.getBlob(digest));
      } catch (err) {
        if (err instanceof LamplighterError && err.code === ErrorCodes.NOT_FOUND) {
          throw new LamplighterError(ErrorCodes.MODULE_INVALID, `artifact '${name}' (sha256 ${digest}) is missing from the store`, { cause: err });
        }
        throw err;
      }
    }
    try {
      for (const spec of manifest.functions) {
        const factory = await buildFactory(spec, {
          pool: this.pool,
          store: this.store,
          appDir: revision.appDir,
          artifactDigest,
          artifact: async (name) => blobs.get(artifactDigest(name)) ?? this.store.getBlob(artifactDigest(name)),
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

  /**
   * Deploys a revision whose artifacts are already in the store; all or nothing. The same manifest
   * and artifacts as the revision serving (and intact in the store) commit nothing: `unchanged`.
   */
  deploy(request: DeployRequest): Promise<DeployResult> {
    return this.serial(async () => {
      const manifest = parseManifest(request.manifest);
      this.checkConflicts(manifest);
      for (const fn of manifest.functions) {
        if (fn.source && !request.artifacts[fn.source]) {
          throw new LamplighterError(ErrorCodes.MODULE_INVALID, `Cannot deploy function '${fn.name}': artifact '${fn.source}' was not uploaded with the deploy`);
        }
      }
      const serving = this.apps.get(manifest.name);
      if (serving && !serving.restored && sameRevision(serving, request) && (await this.intact(request.artifacts))) {
        this.logger.info({ app: manifest.name, revision: serving.revision.number }, 'deploy unchanged');
        return { revision: serving.revision, unchanged: true };
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
      return { revision, unchanged: false };
    });
  }

  /** Whether every artifact is in the store and intact (a damaged one is reported and moved aside). */
  private async intact(artifacts: Record<string, string>): Promise<boolean> {
    for (const digest of Object.values(artifacts)) if (!(await this.store.hasBlob(digest))) return false;
    return true;
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
    this.#unserved.delete(name);
    this.gateway.setRoutes(table);
    // Requests already routed to the old revision finish there; then its instances go out.
    if (old) void stopGroups(old);
    if (old) for (const fn of old.groups.keys()) if (!app.groups.has(fn)) this.logs.forget(fn);
  }

  /** Uploads an app directory's artifacts and deploys it (used by `lamplighter up`). */
  async deployDir(dir: string): Promise<DeployResult> {
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
      const served = this.apps.get(name)?.revision.number ?? this.#unserved.get(name)?.current;
      if (served === undefined && !this.#unserved.has(name)) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No app named '${name}'`);
      let target: Revision | undefined;
      if (to !== undefined) target = await this.store.revision(name, to);
      else {
        target = (await this.store.revisions(name)).filter((r) => served === undefined || r.number < served).at(-1);
        if (!target) throw new LamplighterError(ErrorCodes.NOT_FOUND, `App '${name}' has no intact revision before ${served ?? 'its current one'}`);
      }
      const built = await this.build(target);
      // The older revision must still fit beside the apps deployed since.
      await this.admit(name, built);
      try {
        await this.store.setCurrent(name, target.number);
      } catch (err) {
        await stopGroups(built);
        throw err;
      }
      this.install(name, built);
      this.logger.info({ app: name, revision: target.number }, 'rolled back');
      return target;
    });
  }

  /** Removes an app: its routes go at once, its instances after in-flight requests. */
  remove(name: string): Promise<void> {
    return this.serial(async () => {
      const app = this.apps.get(name);
      if (!app && !this.#unserved.has(name)) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No app named '${name}'`);
      await this.store.removeApp(name);
      this.#unserved.delete(name);
      if (!app) return;
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
    const served: AppStatus[] = [...this.apps.entries()].map(([name, app]) => ({
      name,
      revision: app.revision.number,
      createdAt: app.revision.createdAt,
      functions: [...app.groups.values()].map((g) => this.status(app, g)),
      ...(app.restored ? { restored: app.restored } : {}),
    }));
    // An app none of whose revisions could be restored is listed too, with why, and no functions.
    const unserved: AppStatus[] = [...this.#unserved.entries()].map(([name, note]) => ({ name, revision: note.current ?? 0, createdAt: '', functions: [], restored: note }));
    return [...served, ...unserved].sort((a, b) => a.name.localeCompare(b.name));
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

/** Whether a deploy request is the revision an app already serves: same manifest text, same artifacts. */
function sameRevision(app: DeployedApp, request: DeployRequest): boolean {
  const { revision } = app;
  if (revision.manifest !== request.manifest) return false;
  const names = Object.keys(request.artifacts);
  if (names.length !== Object.keys(revision.artifacts).length || names.some((n) => revision.artifacts[n] !== request.artifacts[n])) return false;
  // Process functions run from the app directory, so for them a deploy from elsewhere is a change.
  const usesDir = app.manifest.functions.some((fn) => fn.runtime === 'process');
  return !usesDir || path.resolve(revision.appDir ?? '') === path.resolve(request.appDir ?? '');
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
