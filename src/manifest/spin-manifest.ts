// Spin application manifests (`spin.toml`, manifest version 2) read as Lamplighter manifests.
//
// The translation happens where the manifest is read (the CLI, `up`), so nodes only ever store
// and parse lamplighter.toml. What Spin offers and Lamplighter does not (key-value stores, Redis
// triggers, remote sources…) is refused by name, never ignored.
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';

/** The file name Spin gives its manifest. */
export const SPIN_MANIFEST_FILE = 'spin.toml';

/** A Spin manifest that cannot run on Lamplighter, with every reason found. */
export class SpinManifestError extends Error {
  override name = 'SpinManifestError';
}

type Table = Record<string, unknown>;

const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** Component fields Lamplighter cannot provide: each refused with what to do instead. */
const UNSUPPORTED_COMPONENT_FIELDS: Readonly<Record<string, string>> = {
  key_value_stores: 'Lamplighter has no key-value store interface',
  sqlite_databases: 'Lamplighter has no SQLite interface',
  ai_models: 'Lamplighter has no AI inferencing interface',
  variables: "component variables need Spin's variables interface; pass values through environment = { NAME = \"{{ variable }}\" } instead",
  dependencies: 'component dependencies (composition) are not supported; compose the component before deploying it',
  dependencies_inherit_configuration: 'component dependencies are not supported',
  allowed_http_hosts: 'allowed_http_hosts is the Spin 1 form; write allowed_outbound_hosts = ["https://…"]',
};

/** Component fields that only matter to Spin's tooling, not to running the app (`build` becomes `up --watch`'s). */
const TOOLING_COMPONENT_FIELDS = new Set(['description', 'build', 'tool']);

/** Spin's names allow upper case and '_'; Lamplighter's are lower-case letters, digits and '-'. */
function lamplighterName(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

/** Joins Spin 2's application base path and a trigger's route. */
function joinBase(base: string, route: string): string {
  const b = base.replace(/\/+$/, '');
  return b === '' ? route : route === '/' ? b || '/' : `${b}${route}`;
}

/** Spin's WAGI argv ("${SCRIPT_NAME} … ${ARGS}") as Lamplighter's extra arguments, or a reason it cannot be. */
function wagiArgv(argv: unknown): string[] | string {
  if (argv === undefined) return [];
  if (typeof argv !== 'string') return 'executor.argv must be a string like "${SCRIPT_NAME} ${ARGS}"';
  const words = argv.trim().split(/\s+/);
  if (words[0] !== '${SCRIPT_NAME}' || words.at(-1) !== '${ARGS}' || words.length < 2) {
    return `executor.argv "${argv}" is not supported: Lamplighter passes the module name first and the query arguments last, so argv must read "\${SCRIPT_NAME} … \${ARGS}"`;
  }
  const middle = words.slice(1, -1);
  if (middle.some((w) => w.includes('${'))) return `executor.argv "${argv}" uses a placeholder other than \${SCRIPT_NAME} and \${ARGS}`;
  return middle;
}

interface FunctionDraft {
  name: string;
  runtime: 'wagi' | 'component';
  source: string;
  routes: string[];
  argv: string[];
  env: Record<string, string>;
  allowedOutboundHosts: string[];
  build?: string;
  files?: unknown[];
  excludeFiles?: unknown[];
}

/**
 * Translates the text of a Spin manifest (version 2) into the text of the equivalent
 * lamplighter.toml. Throws a SpinManifestError listing everything that cannot run here, each with
 * its place in the Spin manifest.
 */
export function translateSpinManifest(text: string, origin = SPIN_MANIFEST_FILE): string {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    throw new SpinManifestError(`Invalid Spin manifest ${origin}: ${(err as Error).message.split('\n')[0]}`);
  }
  const problems: string[] = [];
  const refuse = (where: string, why: string): void => void problems.push(`${where}: ${why}`);
  if (!isTable(raw)) throw new SpinManifestError(`Invalid Spin manifest ${origin}: not a TOML table`);
  if (raw.spin_manifest_version !== 2) {
    throw new SpinManifestError(`${origin} is a Spin manifest of version ${JSON.stringify(raw.spin_manifest_version ?? '1')}; Lamplighter reads version 2 (\`spin_manifest_version = 2\`; \`spin doctor\` upgrades a version 1 manifest)`);
  }
  for (const key of Object.keys(raw)) {
    if (!['spin_manifest_version', 'application', 'variables', 'trigger', 'component'].includes(key)) refuse(key, 'unknown top-level field');
  }

  const application = isTable(raw.application) ? raw.application : {};
  if (typeof application.name !== 'string') refuse('application.name', 'the application needs a name');
  const appName = lamplighterName(String(application.name ?? ''));
  let base = '/';
  if (application.trigger !== undefined) {
    const triggers = isTable(application.trigger) ? application.trigger : {};
    for (const [kind, settings] of Object.entries(triggers)) {
      if (kind === 'http' && isTable(settings)) {
        if (typeof settings.base === 'string') base = settings.base;
      } else {
        refuse(`application.trigger.${kind}`, `${kind} triggers are not supported; Lamplighter serves HTTP triggers only`);
      }
    }
  }

  const components = isTable(raw.component) ? raw.component : {};
  const drafts = new Map<string, FunctionDraft>();
  const triggers = isTable(raw.trigger) ? raw.trigger : {};
  for (const [kind, list] of Object.entries(triggers)) {
    if (kind !== 'http') {
      refuse(`trigger.${kind}`, `${kind} triggers are not supported; Lamplighter serves HTTP triggers only`);
      continue;
    }
    if (!Array.isArray(list)) {
      refuse('trigger.http', 'write HTTP triggers as [[trigger.http]] tables');
      continue;
    }
    list.forEach((trigger: unknown, i) => {
      const where = `trigger.http[${i}]`;
      if (!isTable(trigger)) return refuse(where, 'not a table');
      for (const key of Object.keys(trigger)) {
        if (!['route', 'component', 'executor', 'id'].includes(key)) refuse(`${where}.${key}`, 'not supported');
      }
      if (isTable(trigger.route)) return refuse(`${where}.route`, 'private routes ({ private = true }) are not supported: every function has a route');
      if (typeof trigger.route !== 'string') return refuse(`${where}.route`, 'a route is a string like "/hello/..."');
      let id: string;
      let component: unknown;
      if (typeof trigger.component === 'string') {
        id = trigger.component;
        component = components[id];
        if (component === undefined) return refuse(`${where}.component`, `no [component.${id}] in the manifest`);
      } else if (isTable(trigger.component)) {
        id = `component-${i + 1}`;
        component = trigger.component;
      } else {
        return refuse(`${where}.component`, 'name a [component.…] or write one inline');
      }
      const executor = isTable(trigger.executor) ? trigger.executor : undefined;
      const type = executor?.type ?? 'spin';
      if (type !== 'spin' && type !== 'wagi') return refuse(`${where}.executor.type`, `executor "${String(type)}" is not supported (spin or wagi)`);
      if (executor?.entrypoint !== undefined && executor.entrypoint !== '_start') {
        refuse(`${where}.executor.entrypoint`, `entrypoint "${String(executor.entrypoint)}" is not supported: Lamplighter runs WAGI modules from _start`);
      }
      const argv = type === 'wagi' ? wagiArgv(executor?.argv) : [];
      if (typeof argv === 'string') return refuse(`${where}.executor.argv`, argv);
      const route = joinBase(base, trigger.route);
      const existing = drafts.get(id);
      const runtime = type === 'wagi' ? 'wagi' : 'component';
      if (existing) {
        if (existing.runtime !== runtime) refuse(where, `component '${id}' is run by two executors (spin and wagi); give each its own component`);
        existing.routes.push(route);
        return;
      }
      const draft = componentDraft(id, component, `component.${id}`, runtime, refuse);
      if (draft) drafts.set(id, { ...draft, routes: [route], argv });
    });
  }
  for (const id of Object.keys(components)) {
    if (![...drafts.keys()].includes(id) && !problems.some((p) => p.includes(`component '${id}'`))) refuse(`component.${id}`, 'no [[trigger.http]] routes to it; add one, or remove the component');
  }
  const names = new Map<string, string>();
  for (const [id, draft] of drafts) {
    const other = names.get(draft.name);
    if (other !== undefined) refuse(`component.${id}`, `its Lamplighter name '${draft.name}' is also that of component '${other}'; rename one`);
    names.set(draft.name, id);
  }
  if (drafts.size === 0 && problems.length === 0) refuse('trigger.http', 'the manifest has no HTTP triggers');
  if (problems.length > 0) {
    throw new SpinManifestError(`Cannot run Spin manifest ${origin} on Lamplighter: ${problems.join('; ')}`);
  }

  const manifest: Table = { name: appName };
  if (typeof application.version === 'string') manifest.version = application.version;
  if (typeof application.description === 'string') manifest.description = application.description;
  if (isTable(raw.variables)) manifest.variables = raw.variables;
  manifest.function = [...drafts.values()].map((d) => {
    const fn: Table = { name: d.name, runtime: d.runtime, source: d.source, routes: d.routes };
    if (d.argv.length > 0) fn.argv = d.argv;
    if (d.allowedOutboundHosts.length > 0) fn.allowed_outbound_hosts = d.allowedOutboundHosts;
    if (Object.keys(d.env).length > 0) fn.env = d.env;
    if (d.build !== undefined) fn.build = d.build;
    if (d.files !== undefined) fn.files = d.files;
    if (d.excludeFiles !== undefined) fn.exclude_files = d.excludeFiles;
    return fn;
  });
  return `# Translated from the Spin manifest ${origin}\n${stringifyToml(manifest)}\n`;
}

/** One Spin component as a Lamplighter function (routes and argv added by the caller). */
function componentDraft(id: string, component: unknown, where: string, runtime: 'wagi' | 'component', refuse: (where: string, why: string) => void): Omit<FunctionDraft, 'routes' | 'argv'> | undefined {
  if (!isTable(component)) {
    refuse(where, 'not a table');
    return undefined;
  }
  let ok = true;
  for (const [key, value] of Object.entries(component)) {
    const why = UNSUPPORTED_COMPONENT_FIELDS[key];
    const empty = Array.isArray(value) ? value.length === 0 : isTable(value) ? Object.keys(value).length === 0 : false;
    if (why !== undefined && !empty) {
      refuse(`${where}.${key}`, why);
      ok = false;
    } else if (why === undefined && !TOOLING_COMPONENT_FIELDS.has(key) && !['source', 'environment', 'allowed_outbound_hosts', 'id', 'files', 'exclude_files'].includes(key)) {
      refuse(`${where}.${key}`, 'not supported');
      ok = false;
    }
  }
  let source = '';
  if (typeof component.source === 'string') source = component.source;
  else if (isTable(component.source)) {
    refuse(`${where}.source`, 'remote sources ({ url, digest }) are not fetched: download the file and set source to its path');
    ok = false;
  } else {
    refuse(`${where}.source`, 'a component needs source = "path/to/file.wasm"');
    ok = false;
  }
  const env: Record<string, string> = {};
  if (component.environment !== undefined) {
    if (!isTable(component.environment)) {
      refuse(`${where}.environment`, 'write it as a table: environment = { NAME = "value" }');
      ok = false;
    } else {
      for (const [name, value] of Object.entries(component.environment)) env[name] = String(value);
    }
  }
  const allowedOutboundHosts: string[] = [];
  if (Array.isArray(component.allowed_outbound_hosts)) {
    for (const host of component.allowed_outbound_hosts) {
      const text = String(host);
      const scheme = /^([a-z*]+):\/\//.exec(text)?.[1];
      if (scheme !== undefined && !['http', 'https', '*'].includes(scheme)) {
        refuse(`${where}.allowed_outbound_hosts`, `"${text}": Lamplighter makes outbound HTTP requests only (http, https)`);
        ok = false;
      } else {
        allowedOutboundHosts.push(text);
      }
    }
  }
  if (!ok) return undefined;
  // Spin's [component.x.build]: the command `up --watch` runs, in its workdir when it names one.
  let build: string | undefined;
  if (isTable(component.build) && typeof component.build.command === 'string') {
    const workdir = component.build.workdir;
    build = typeof workdir === 'string' ? `cd '${workdir.replace(/'/g, "'\\''")}' && ${component.build.command}` : component.build.command;
  }
  // Spin's files and exclude_files take Lamplighter's form as they are; Lamplighter checks them.
  const files = Array.isArray(component.files) && component.files.length > 0 ? component.files : undefined;
  const excludeFiles = files && Array.isArray(component.exclude_files) && component.exclude_files.length > 0 ? component.exclude_files : undefined;
  return {
    name: lamplighterName(id),
    runtime,
    source,
    env,
    allowedOutboundHosts,
    ...(build === undefined ? {} : { build }),
    ...(files === undefined ? {} : { files }),
    ...(excludeFiles === undefined ? {} : { excludeFiles }),
  };
}
