// Deploy-time work for a component: judge it, check its imports and exports, transpile it once.
import { ManifestError, ModuleError } from '../../errors/index.js';
import type { FunctionSpec } from '../../manifest/index.js';
import { binaryKind, readCustomSection, WASM_PAGE } from '../wasm/index.js';
import { coreMemoryInfo } from './component-binary.js';
import { HANDLER_ENTRY_SECTION, HANDLER_ENTRY_VERSION } from './component-protocol.js';
import { coreExportNames, exposeCoreState } from './core-state-exports.js';
import { HANDLER_INTERFACE, HOST_INTERFACES, splitVersion, WASI_VERSION_PREFIX } from './host-interfaces.js';
import { parseOutboundRules } from './outbound-policy.js';

/** A transpiled component, ready to cache by digest and to light instances from. Serialisable. */
export interface PreparedComponent {
  /** Transpiled files: the instantiation module (`entry`) and the core modules it instantiates. */
  files: Record<string, Uint8Array>;
  /** Name of the JS module in `files` that exports `instantiate`. */
  entry: string;
  /** Interfaces the component imports, with versions (e.g. `wasi:io/poll@0.2.6`). */
  imports: string[];
  /** Interfaces and functions the component exports, with versions. */
  exports: string[];
  /**
   * The component embeds the JavaScript engine of componentize-js with the engine's own fetch
   * event, which keeps one event for the life of an instance and refuses a second `respondWith`:
   * an instance answers one request, and only a restore makes it answer again. What
   * `lamplighter build --isolation instance` makes serves wasi:http itself and is not such a
   * component (it carries {@link HANDLER_ENTRY_SECTION}).
   */
  oneRequestPerInstance: boolean;
}

/** The imports and exports of a component's world, read from its WIT. */
export interface ComponentWorld {
  imports: string[];
  exports: string[];
}

interface JcoApi {
  componentWit(component: Uint8Array): string | Promise<string>;
  transpile(
    component: Uint8Array,
    options: Record<string, unknown>,
  ): Promise<{ files: Record<string, Uint8Array>; imports: string[]; exports: Array<[string, string]> }>;
}

let jco: Promise<JcoApi> | undefined;

/** Loads jco on first use: it is large and only deploys need it. */
function loadJco(): Promise<JcoApi> {
  jco ??= import('@bytecodealliance/jco') as unknown as Promise<JcoApi>;
  return jco;
}

/** Reads the top-level `import` and `export` items of a world printed as WIT. */
export function parseWorld(wit: string): ComponentWorld {
  const world: ComponentWorld = { imports: [], exports: [] };
  for (const line of wit.split('\n')) {
    const match = /^\s*(import|export)\s+([^\s;]+)/.exec(line);
    if (!match) continue;
    // `import name: func(...)` names a function; `import ns:pkg/iface@v;` an interface.
    const item = (match[2] as string).replace(/:$/, '');
    (match[1] === 'import' ? world.imports : world.exports).push(item);
  }
  return world;
}

/** Interfaces in `imports` the host does not provide (unknown names, or versions outside 0.2.x). */
export function unsupportedImports(imports: readonly string[]): string[] {
  return imports.filter((item) => {
    const { name, version } = splitVersion(item);
    return !HOST_INTERFACES.includes(name) || version === undefined || !version.startsWith(WASI_VERSION_PREFIX);
  });
}

/** The exported incoming-handler in `exports`, if there is a 0.2.x one. */
export function handlerExportOf(exports: readonly string[]): string | undefined {
  return exports.find((item) => {
    const { name, version } = splitVersion(item);
    return name === HANDLER_INTERFACE && version !== undefined && version.startsWith(WASI_VERSION_PREFIX);
  });
}

/**
 * Checks a component at deploy time and transpiles it once with jco into JS bindings plus core
 * modules, in instantiation mode so that Lamplighter's host supplies every WASI import.
 * Throws a ModuleError for anything that is not a WASI 0.2 HTTP component the host can run.
 */
export async function prepareComponent(bytes: Uint8Array, spec: FunctionSpec): Promise<PreparedComponent> {
  const kind = binaryKind(bytes);
  if (kind === 'module') {
    throw new ModuleError(
      `${spec.source ?? 'its source'} is a core WebAssembly module, not a component; the component runtime needs a WASI 0.2 component exporting ${HANDLER_INTERFACE} (use runtime = "wagi" for a WASI command module)`,
    );
  }
  if (kind !== 'component') {
    throw new ModuleError(`${spec.source ?? 'its source'} is not a WebAssembly component (bad magic number or version)`);
  }
  checkOutbound(spec);

  const api = await loadJco();
  let world: ComponentWorld;
  try {
    world = parseWorld(await api.componentWit(bytes));
  } catch (err) {
    const reason = (err instanceof Error ? err.message : String(err)).split('\n').filter(Boolean).slice(0, 3).join(': ');
    throw new ModuleError(`the component is malformed: ${reason}`, { cause: err });
  }

  const handler = handlerExportOf(world.exports);
  if (!handler) {
    const has = world.exports.length > 0 ? world.exports.join(', ') : 'nothing';
    throw new ModuleError(`the component does not export ${HANDLER_INTERFACE}@0.2.x (it exports ${has})`, {
      detail: { exports: world.exports },
    });
  }
  const missing = unsupportedImports(world.imports);
  if (missing.length > 0) {
    throw new ModuleError(`the component imports interfaces the host does not provide: ${missing.join(', ')}`, {
      detail: { missing },
    });
  }

  let transpiled: Awaited<ReturnType<JcoApi['transpile']>>;
  try {
    transpiled = await api.transpile(bytes, {
      name: 'component',
      instantiation: 'sync',
      emitTypescriptDeclarations: false,
      base64Cutoff: 0,
      quiet: true,
    });
  } catch (err) {
    throw new ModuleError(`the component could not be transpiled: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`, { cause: err });
  }

  const files: Record<string, Uint8Array> = {};
  for (const [name, content] of Object.entries(transpiled.files)) {
    if (name.endsWith('.d.ts')) continue;
    // Rewritten here, once, on the prepare thread: the cache keeps the result, so a start from it
    // skips the rewrite and the code scan.
    files[name] = name.endsWith('.wasm') ? exposeCoreState(content, { fresh: true }) : content;
  }
  const entry = 'component.js';
  if (!files[entry]) throw new ModuleError(`transpiling produced no ${entry}`);

  const prepared = { files, entry, imports: world.imports, exports: world.exports, oneRequestPerInstance: embedsFetchEventEngine(bytes, files) };
  checkMemory(prepared, spec);
  checkIsolation(prepared, spec);
  return prepared;
}

function checkOutbound(spec: FunctionSpec): void {
  try {
    parseOutboundRules(spec.allowedOutboundHosts);
  } catch (err) {
    throw new ManifestError(`function[${spec.name}].${(err as Error).message}`);
  }
}

function checkMemory(prepared: PreparedComponent, spec: FunctionSpec): void {
  for (const [name, content] of Object.entries(prepared.files)) {
    if (!name.endsWith('.wasm')) continue;
    const { definedInitialPages, importsMemory } = coreMemoryInfo(content);
    if (!importsMemory && definedInitialPages !== undefined && definedInitialPages * WASM_PAGE > spec.limits.memory) {
      throw new ModuleError(
        `the component starts with ${definedInitialPages * WASM_PAGE} bytes of linear memory, over limits.memory of ${spec.limits.memory} bytes`,
      );
    }
  }
}

/**
 * True when the component embeds the JavaScript engine componentize-js builds (its core module
 * exports componentize-js's `check_init`) and does not carry this Lamplighter's reusable entry
 * (`lamplighter build --isolation instance`, which answers requests itself): the engine's fetch
 * event then serves one request per instance. An entry of another version counts as unknown.
 */
function embedsFetchEventEngine(component: Uint8Array, files: Record<string, Uint8Array>): boolean {
  const entry = readCustomSection(component, HANDLER_ENTRY_SECTION, (what) => new ModuleError(`the component is malformed: ${what}`));
  if (entry === HANDLER_ENTRY_VERSION) return false;
  return Object.entries(files).some(([name, content]) => name.endsWith('.wasm') && coreExportNames(content).includes('check_init'));
}

function checkIsolation(prepared: PreparedComponent, spec: FunctionSpec): void {
  if (spec.isolation !== 'instance' || !prepared.oneRequestPerInstance) return;
  throw new ManifestError(
    `function[${spec.name}].isolation = "instance" cannot be used with this component: it embeds the JavaScript engine of componentize-js (StarlingMonkey, as lamplighter build makes by default) with its own fetch event, which answers only one request per instance. Build it with "lamplighter build --isolation instance" (an entry that answers any number of requests), or leave isolation out: each request then gets the instance restored as new`,
  );
}

/**
 * The checks of {@link prepareComponent} that depend on the spec rather than the bytes (the
 * outbound allow-list, initial memory against limits.memory), for a prepared component taken from
 * a cache. Throws ManifestError or ModuleError.
 */
export function validateComponentSpec(prepared: PreparedComponent, spec: FunctionSpec): void {
  checkOutbound(spec);
  checkMemory(prepared, spec);
  checkIsolation(prepared, spec);
  if (!prepared.files[prepared.entry]) throw new ModuleError(`the prepared component has no ${prepared.entry}`);
}
