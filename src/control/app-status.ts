// What `ls` and the admin API show of the apps a node serves, and of those it could not restore.
import type { BreakerStatus } from '../admission/index.js';
import type { Dispatcher } from '../dispatch/index.js';
import type { FunctionSpec } from '../manifest/index.js';
import type { DeployedApp } from './deployments.js';
import type { RestoreNote } from './restore-plan.js';

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
  /** Its circuit breakers, when the manifest declares them: how many are open, and the first keys. */
  breakers?: BreakerStatus;
}

/** Open breakers listed per function by `ls` and the admin API; the count covers them all. */
export const LISTED_OPEN_BREAKERS = 20;

/** An app as `ls` shows it. */
export interface AppStatus {
  name: string;
  revision: number;
  createdAt: string;
  functions: FunctionStatus[];
  /** Set when the node serves another revision than the app's current one (damage found at start), or none. */
  restored?: RestoreNote;
}

/** One function of a served app, as `ls` shows it. */
export function functionStatus(app: DeployedApp, group: Dispatcher): FunctionStatus {
  const instances = group.instanceCount;
  const breakers = app.targets.get(group.spec.name)?.breakerStatus(LISTED_OPEN_BREAKERS);
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
    ...(breakers ? { breakers } : {}),
  };
}

/** Every app with its functions' state, served or not, by name. */
export function appStatuses(apps: ReadonlyMap<string, DeployedApp>, unserved: ReadonlyMap<string, RestoreNote>): AppStatus[] {
  const served: AppStatus[] = [...apps.entries()].map(([name, app]) => ({
    name,
    revision: app.revision.number,
    createdAt: app.revision.createdAt,
    functions: [...app.groups.values()].map((g) => functionStatus(app, g)),
    ...(app.restored ? { restored: app.restored } : {}),
  }));
  // An app none of whose revisions could be restored is listed too, with why, and no functions.
  const notServing: AppStatus[] = [...unserved.entries()].map(([name, note]) => ({ name, revision: note.current ?? 0, createdAt: '', functions: [], restored: note }));
  return [...served, ...notServing].sort((a, b) => a.name.localeCompare(b.name));
}
