// The apps a node serves and what changes them — restore, deploy, rollback, remove — one at a time.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { AdmittedFunction, type BreakerGate } from '../admission/index.js';
import { Dispatcher, type FunctionPeers } from '../dispatch/index.js';
import { platformLimitDefaults, type LimitDefaults } from '../config/index.js';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { RouteTable, type Gateway, type RouteEntry } from '../gateway/index.js';
import type { GatewayTarget } from '../instance/index.js';
import { collectFunctionFiles, fileTargets, loadManifest, parseManifest, readArtifact, type AppManifest, type FunctionSpec } from '../manifest/index.js';
import type { FunctionLogs, Logger, Metrics } from '../observability/index.js';
import type { WorkerBudget } from '../runtime/component/index.js';
import type { SandboxPool } from '../runtime/wasm/index.js';
import type { ArtifactStore, PointerChange, Revision } from '../store/index.js';
import { EnvironmentVariables, resolveVariables, withRenderedEnv, type VariableProvider } from '../variables/index.js';
import { restoreNote, restoreOrder, type RestoreNote } from './restore-plan.js';
import { functionFilesDir } from './function-files-dir.js';
import { withNodeLimits } from './node-limits.js';
import { buildFactory } from './runtimes.js';

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

/** One revision of an app, built: its functions' dispatchers and admission, serving or about to. */
export interface DeployedApp {
  manifest: AppManifest;
  revision: Revision;
  /** Each function's dispatcher, by name. */
  groups: Map<string, Dispatcher>;
  /** Each function behind its admission steps, by name: what its routes lead to. */
  targets: Map<string, AdmittedFunction>;
  /** Set when this revision was restored in place of a damaged or failing current one. */
  restored?: RestoreNote;
}

/** What the deployments use of their node. */
export interface DeploymentsNode {
  store: ArtifactStore;
  pool: SandboxPool;
  gateway: Gateway;
  logs: FunctionLogs;
  logger: Logger;
  metrics: Metrics;
  /** In a cluster: one function's view of its instances on other nodes, given a reader of its local ones. */
  peersFor?: (fn: string, figures: () => Array<{ id: string; free: number; ready: boolean }>) => FunctionPeers;
  /** One function's circuit breakers, when it has any; none leaves the breaker step out. @default undefined */
  breakerFor?: (spec: FunctionSpec) => BreakerGate | undefined;
  /** Where app variables get their values, asked in order. @default the environment only */
  variables?: readonly VariableProvider[];
  /** Where functions' shipped files are laid out. @default none (a function with files fails to build) */
  filesRoot?: string;
  /** The node's component worker threads, shared by its component functions. @default the process's */
  componentWorkers?: WorkerBudget;
  /** Limits for functions whose manifest sets none; a live object (a reload changes it). @default the platform's */
  limitDefaults?: Readonly<LimitDefaults>;
}

/** The apps one node serves, and every operation that changes which revision serves. */
export class Deployments {
  /** Apps served now, by name. */
  readonly apps = new Map<string, DeployedApp>();
  /** Apps in the store of which no revision could be restored: listed, never silently absent. */
  readonly unserved = new Map<string, RestoreNote>();
  readonly #node: DeploymentsNode;
  #queue: Promise<unknown> = Promise.resolve();
  /** The last pointer change heard per app, so that a retry never undoes a newer one. */
  readonly #latest = new Map<string, PointerChange>();
  readonly #retries = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(node: DeploymentsNode) {
    this.#node = node;
  }

  /**
   * Serves every app in the store at its current revision; when that revision is damaged or does
   * not build, at the newest intact one that does, saying so in `ls` and the log.
   */
  restore(): Promise<void> {
    // In the queue like any change, so that pointer changes heard meanwhile are applied after it.
    return this.#serial(() => this.#restore());
  }

  async #restore(): Promise<void> {
    for (const name of await this.#node.store.apps()) {
      const record = await this.#node.store.record(name);
      if (!record) continue;
      let problem = record.damage === undefined ? undefined : { damaged: true, reason: record.damage };
      let restored = false;
      for (const revision of restoreOrder(record)) {
        try {
          const app = await this.#build(revision);
          await this.#admit(name, app);
          if (problem) {
            app.restored = restoreNote(record, revision.number, problem);
            this.#node.logger.error({ app: name, revision: revision.number, current: record.current }, `app '${name}' ${app.restored.message}`);
          } else {
            this.#node.logger.info({ app: name, revision: revision.number }, 'restored app');
          }
          this.apps.set(name, app);
          restored = true;
          break;
        } catch (err) {
          const message = (err as Error).message;
          this.#node.logger.error({ app: name, revision: revision.number, err: message }, `could not restore revision ${revision.number} of app '${name}'`);
          problem ??= { damaged: err instanceof LamplighterError && err.code === ErrorCodes.STORE_DAMAGED, reason: message };
        }
      }
      if (!restored) {
        const note = restoreNote(record, undefined, problem ?? { damaged: true, reason: 'it has no intact revision' });
        this.unserved.set(name, note);
        this.#node.logger.error({ app: name, current: record.current }, `app '${name}' ${note.message}`);
      }
    }
    this.#swapRoutes();
  }

  /** Checks that a built app fits beside the others (function names, routes); stops it if not. */
  async #admit(name: string, built: DeployedApp): Promise<void> {
    try {
      this.#checkConflicts(built.manifest);
    } catch (err) {
      await stopGroups(built);
      throw err;
    }
    await this.#checkRoutes(name, built);
  }

  /** Runs deploy-type operations one at a time, so two deploys never interleave. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work, work);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Builds the groups of one revision without touching what is being served. */
  async #build(revision: Revision): Promise<DeployedApp> {
    const declared = parseManifest(revision.manifest, `app '${revision.app}' revision ${revision.number}`);
    // Limits the manifest leaves unset are this node's, and follow its reloads.
    const limitDefaults = this.#node.limitDefaults ?? platformLimitDefaults();
    const manifest = { ...declared, functions: declared.functions.map((spec) => withNodeLimits(spec, limitDefaults)) };
    // Values are this node's: resolved at every build, never stored with the revision.
    const variables = await resolveVariables(manifest, this.#node.variables ?? [new EnvironmentVariables()]);
    const groups = new Map<string, Dispatcher>();
    const targets = new Map<string, AdmittedFunction>();
    const artifactDigest = (name: string): string => {
      const digest = revision.artifacts[name];
      if (!digest) throw new LamplighterError(ErrorCodes.MODULE_INVALID, `artifact '${name}' was not uploaded with the deploy`);
      return digest;
    };
    const readBlob = async (name: string, digest: string): Promise<Buffer> => {
      try {
        return await this.#node.store.getBlob(digest);
      } catch (err) {
        if (err instanceof LamplighterError && err.code === ErrorCodes.NOT_FOUND) {
          throw new LamplighterError(ErrorCodes.MODULE_INVALID, `artifact '${name}' (sha256 ${digest}) is missing from the store`, { cause: err });
        }
        throw err;
      }
    };
    // Every artifact is read and verified here, even one whose transpile is cached and not read
    // again, except shipped files: they are read only when their laid-out directory is missing.
    const shipped = shippedFileNames(manifest.functions, Object.keys(revision.artifacts));
    const blobs = new Map<string, Buffer>();
    for (const [name, digest] of Object.entries(revision.artifacts)) {
      if (!shipped.has(name)) blobs.set(digest, await readBlob(name, digest));
    }
    try {
      for (const spec of manifest.functions) {
        let group: Dispatcher | undefined;
        const peers = this.#node.peersFor?.(spec.name, () => group?.instanceFigures() ?? []);
        const filesRoot = this.#node.filesRoot;
        if (spec.files && !filesRoot) throw new LamplighterError(ErrorCodes.INTERNAL, `function '${spec.name}' ships files, and this node has no place for them`);
        const filesDir = spec.files && filesRoot ? await functionFilesDir(filesRoot, spec.files, revision.artifacts, readBlob) : undefined;
        const factory = await buildFactory(withRenderedEnv(spec, variables), {
          ...(filesDir === undefined ? {} : { filesDir }),
          pool: this.#node.pool,
          ...(this.#node.componentWorkers ? { componentWorkers: this.#node.componentWorkers } : {}),
          appDir: revision.appDir,
          artifactDigest,
          artifact: async (name) => blobs.get(artifactDigest(name))!,
          log: (stream, text) => this.#node.logs.write(spec.name, stream, text),
          onRun: this.#node.metrics.functionRun(spec.name, spec.runtime),
        });
        group = new Dispatcher(spec, factory, {
          metrics: this.#node.metrics,
          peers,
          log: (text) => {
            this.#node.logs.write(spec.name, 'platform', text);
            this.#node.logger.warn({ function: spec.name }, text);
          },
        });
        groups.set(spec.name, group);
        targets.set(spec.name, new AdmittedFunction(group, { breaker: this.#node.breakerFor?.(spec) }));
      }
    } catch (err) {
      await stopGroups({ groups, targets });
      throw err;
    }
    return { manifest, revision, groups, targets };
  }

  #routeEntries(except?: string, extra?: DeployedApp): Array<RouteEntry<GatewayTarget>> {
    const entries: Array<RouteEntry<GatewayTarget>> = [];
    const add = (app: DeployedApp): void => {
      for (const target of app.targets.values()) {
        for (const pattern of target.spec.routes) entries.push({ pattern, hosts: target.spec.hosts, target, stripPrefix: target.spec.stripPrefix });
      }
    };
    for (const [name, app] of this.apps) if (name !== except) add(app);
    if (extra) add(extra);
    return entries;
  }

  #swapRoutes(): void {
    this.#node.gateway.setRoutes(new RouteTable(this.#routeEntries(), describeTarget));
  }

  /** Checks that a manifest can join the others: unique function names and routes. */
  #checkConflicts(manifest: AppManifest): void {
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
    return this.#serial(async () => {
      const manifest = parseManifest(request.manifest);
      this.#checkConflicts(manifest);
      for (const fn of manifest.functions) {
        if (fn.source && !request.artifacts[fn.source]) {
          throw new LamplighterError(ErrorCodes.MODULE_INVALID, `Cannot deploy function '${fn.name}': artifact '${fn.source}' was not uploaded with the deploy`);
        }
      }
      const serving = this.apps.get(manifest.name);
      if (serving && !serving.restored && sameRevision(serving, request) && (await this.#intact(request.artifacts))) {
        this.#node.logger.info({ app: manifest.name, revision: serving.revision.number }, 'deploy unchanged');
        return { revision: serving.revision, unchanged: true };
      }
      // A shared store compares and sets the pointer: a deploy that raced another loses, and says so.
      const expectCurrent = this.#node.store.watch ? ((await this.#node.store.current(manifest.name))?.number ?? null) : undefined;
      const draft: Revision = { app: manifest.name, number: 0, createdAt: '', manifest: request.manifest, artifacts: request.artifacts, appDir: request.appDir };
      const built = await this.#build(draft);
      await this.#checkRoutes(manifest.name, built);
      let revision: Revision;
      try {
        revision = await this.#node.store.commit(manifest.name, { manifest: request.manifest, artifacts: request.artifacts, appDir: request.appDir }, { expectCurrent });
      } catch (err) {
        await stopGroups(built);
        throw err;
      }
      built.revision = revision;
      this.#install(manifest.name, built);
      this.#node.logger.info({ app: manifest.name, revision: revision.number }, 'deployed');
      return { revision, unchanged: false };
    });
  }

  /** Whether every artifact is in the store and intact (a damaged one is reported and moved aside). */
  async #intact(artifacts: Record<string, string>): Promise<boolean> {
    for (const digest of Object.values(artifacts)) if (!(await this.#node.store.hasBlob(digest))) return false;
    return true;
  }

  /** Checks a built app's routes against every other app's before anything is committed. */
  async #checkRoutes(name: string, built: DeployedApp): Promise<void> {
    try {
      new RouteTable(this.#routeEntries(name, built), describeTarget);
    } catch (err) {
      await stopGroups(built);
      throw new LamplighterError(ErrorCodes.DEPLOY_CONFLICT, `Cannot deploy app '${name}': ${(err as Error).message}`);
    }
  }

  #install(name: string, app: DeployedApp): void {
    const old = this.apps.get(name);
    // The table is built before anything changes, so a failure leaves the node as it was.
    const table = new RouteTable(this.#routeEntries(name, app), describeTarget);
    this.apps.set(name, app);
    this.unserved.delete(name);
    this.#node.gateway.setRoutes(table);
    // Requests already routed to the old revision finish there; then its instances go out.
    if (old) void stopGroups(old);
    if (old) for (const fn of old.groups.keys()) if (!app.groups.has(fn)) this.#node.logs.forget(fn);
  }

  /** Uploads an app directory's artifacts and deploys it (used by `lamplighter up`). */
  async deployDir(dir: string): Promise<DeployResult> {
    const { manifest, dir: appDir, text } = await loadManifest(dir);
    const artifacts: Record<string, string> = {};
    for (const fn of manifest.functions) {
      if (!fn.source || artifacts[fn.source]) continue;
      const bytes = await readArtifact(appDir, fn);
      artifacts[fn.source] = await this.#node.store.putBlob(bytes);
    }
    // Files shipped with functions travel as artifacts named by their app-relative paths.
    for (const fn of manifest.functions) {
      for (const rel of await collectFunctionFiles(appDir, fn.name, fn.files ?? [])) {
        artifacts[rel] ??= await this.#node.store.putBlob(await readFile(path.join(appDir, rel)));
      }
    }
    return this.deploy({ manifest: text, artifacts, appDir });
  }

  /** Points an app back at an older revision (the one before the current by default). */
  rollback(name: string, to?: number): Promise<Revision> {
    return this.#serial(async () => {
      const served = this.apps.get(name)?.revision.number ?? this.unserved.get(name)?.current;
      if (served === undefined && !this.unserved.has(name)) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No app named '${name}'`);
      let target: Revision | undefined;
      if (to !== undefined) target = await this.#node.store.revision(name, to);
      else {
        target = (await this.#node.store.revisions(name)).filter((r) => served === undefined || r.number < served).at(-1);
        if (!target) throw new LamplighterError(ErrorCodes.NOT_FOUND, `App '${name}' has no intact revision before ${served ?? 'its current one'}`);
      }
      const built = await this.#build(target);
      // The older revision must still fit beside the apps deployed since.
      await this.#admit(name, built);
      try {
        await this.#node.store.setCurrent(name, target.number);
      } catch (err) {
        await stopGroups(built);
        throw err;
      }
      this.#install(name, built);
      this.#node.logger.info({ app: name, revision: target.number }, 'rolled back');
      return target;
    });
  }

  /** Removes an app: its routes go at once, its instances after in-flight requests. */
  remove(name: string): Promise<void> {
    return this.#serial(async () => {
      const app = this.apps.get(name);
      if (!app && !this.unserved.has(name)) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No app named '${name}'`);
      await this.#node.store.removeApp(name);
      this.unserved.delete(name);
      if (!app) return;
      this.apps.delete(name);
      this.#swapRoutes();
      for (const fn of app.groups.keys()) this.#node.logs.forget(fn);
      await stopGroups(app);
    });
  }

  /**
   * Serves what another node (or this one) made current in a shared store: the revision the
   * pointer names, or nothing once the app is removed. A change already served is a no-op.
   */
  follow(change: PointerChange): Promise<void> {
    this.#latest.set(change.app, change);
    return this.#serial(async () => {
      const { app: name, current } = change;
      const served = this.apps.get(name);
      if (current === undefined) {
        if (!served && !this.unserved.delete(name)) return;
        if (served) {
          this.apps.delete(name);
          this.#swapRoutes();
          for (const fn of served.groups.keys()) this.#node.logs.forget(fn);
          void stopGroups(served);
        }
        this.#node.logger.info({ app: name }, 'app removed in the cluster');
        return;
      }
      if (served?.revision.number === current && !served.restored) return;
      try {
        const built = await this.#build(await this.#node.store.revision(name, current));
        await this.#admit(name, built);
        this.#install(name, built);
        this.#node.logger.info({ app: name, revision: current }, 'serving the revision made current in the cluster');
      } catch (err) {
        // The store unreachable for a moment (a NATS server lost, leaders being elected): try
        // again shortly, unless a newer change comes first. A revision that cannot be built is final.
        const transient = err instanceof LamplighterError && err.code === ErrorCodes.UPSTREAM_UNAVAILABLE;
        this.#node.logger.error({ app: name, revision: current, err: (err as Error).message }, `could not serve revision ${current} of app '${name}' made current in the cluster${transient ? ', trying again in 1 s' : ''}; still serving ${served ? `revision ${served.revision.number}` : 'nothing of it'}`);
        if (transient && !this.#closed) this.#retryFollow(change);
      }
    });
  }

  /** Follows `change` again after a second, unless a newer change of the app was heard meanwhile. */
  #retryFollow(change: PointerChange): void {
    this.#latest.set(change.app, change);
    const timer = setTimeout(() => {
      this.#retries.delete(timer);
      if (this.#latest.get(change.app) === change) void this.follow(change);
    }, FOLLOW_RETRY_MS);
    this.#retries.add(timer);
  }

  /** The group serving a function, or undefined. */
  group(name: string): Dispatcher | undefined {
    for (const app of this.apps.values()) {
      const group = app.groups.get(name);
      if (group) return group;
    }
    return undefined;
  }

  /** Stops every app's instances (the node is closing). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#retries) clearTimeout(timer);
    await Promise.all([...this.apps.values()].map(stopGroups));
    this.apps.clear();
  }
}

/** How long a pointer change that could not be followed waits before it is tried again. */
const FOLLOW_RETRY_MS = 1000;

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

async function stopGroups(app: Pick<DeployedApp, 'groups' | 'targets'>): Promise<void> {
  for (const target of app.targets.values()) target.close();
  await Promise.all([...app.groups.values()].map((g) => g.stop()));
}

/** Artifacts that are only shipped files (no function's source): read when their directory is laid out. */
function shippedFileNames(functions: readonly FunctionSpec[], artifactNames: readonly string[]): Set<string> {
  const shipped = new Set<string>();
  for (const fn of functions) if (fn.files) for (const name of fileTargets(fn.files, artifactNames).values()) shipped.add(name);
  for (const fn of functions) if (fn.source !== undefined) shipped.delete(fn.source);
  return shipped;
}
