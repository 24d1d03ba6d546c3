// Shared by the component tests: builds fixture components from source (cached by content) and makes specs.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseManifest, type FunctionSpec } from '../src/manifest/index.js';
import type { Instance } from '../src/instance/index.js';
import { buildComponent, buildRecipe, createComponentFactory, type ComponentFactory, type ComponentInstance, type PreparedComponent } from '../src/runtime/component/index.js';
import { makeInvocationRequest, readBody, withTimeout, type InvocationRequestInit } from './instance-conformance.js';

/** Directory of the component fixtures' sources. */
export const COMPONENT_FIXTURES = fileURLToPath(new URL('../../test/fixtures/component/', import.meta.url));

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CACHE_DIR = path.join(tmpdir(), 'lamplighter-component-fixtures');

async function versionOf(pkg: string): Promise<string> {
  const manifest = JSON.parse(await readFile(path.join(REPO, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

/**
 * Builds the JS or TS handler at `source` into a component with componentize-js, for `isolation`
 * (see BuildComponentOptions). A build takes 10-20 s, so the result is kept under the OS temp dir,
 * keyed by the sha256 of the source, Lamplighter's part of a build (buildRecipe), `isolation`
 * and the tool versions; a changed source is rebuilt. Returns the bytes and the file
 * that keeps them.
 */
export async function buildCachedComponent(source: string, isolation: 'request' | 'instance' = 'request'): Promise<{ component: Uint8Array; file: string }> {
  const hash = createHash('sha256').update(await readFile(source));
  hash.update(buildRecipe()).update(isolation);
  hash.update(await versionOf('@bytecodealliance/componentize-js')).update(await versionOf('esbuild'));
  const file = path.join(CACHE_DIR, `${path.parse(source).name}-${isolation}-${hash.digest('hex').slice(0, 24)}.wasm`);
  try {
    return { component: new Uint8Array(await readFile(file)), file };
  } catch {
    // Not built yet.
  }
  const { component } = await buildComponent(source, { isolation });
  await mkdir(CACHE_DIR, { recursive: true });
  // Written aside and renamed, so a run stopped mid-write never finds half a component.
  const partial = `${file}.${process.pid}.tmp`;
  await writeFile(partial, component);
  await rename(partial, file);
  return { component, file };
}

/** Builds `test/fixtures/component/<name>` (JS or TS) into a component, cached (see buildCachedComponent). */
export async function buildFixtureComponent(name: string, isolation: 'request' | 'instance' = 'request'): Promise<Uint8Array> {
  return (await buildCachedComponent(path.join(COMPONENT_FIXTURES, name), isolation)).component;
}

interface JcoTools {
  componentEmbed(options: { dummy: boolean; witSource: string; world: string }): Promise<Uint8Array>;
  componentNew(core: Uint8Array, adapters: undefined): Promise<Uint8Array>;
}

/**
 * Builds a component for `world` in the WIT file `test/fixtures/component/<witFile>`, whose core
 * module is a stand-in where every export traps (`unreachable`): enough to test deploy-time
 * checks and real traps without a guest toolchain.
 */
export async function buildTrappingComponent(witFile: string, world: string): Promise<Uint8Array> {
  const witSource = await readFile(path.join(COMPONENT_FIXTURES, witFile), 'utf8');
  const jco = (await import('@bytecodealliance/jco')) as unknown as JcoTools;
  const core = await jco.componentEmbed({ dummy: true, witSource, world });
  return jco.componentNew(core, undefined);
}

interface JcoBuild {
  parse(wat: string): Promise<Uint8Array>;
  componentEmbed(options: { binary: Uint8Array; witSource: string; world: string }): Promise<Uint8Array>;
  componentNew(core: Uint8Array, adapters: undefined): Promise<Uint8Array>;
}

/** Behaviours of the reusable stand-in component, by the request count at which they happen (0: never). */
export interface ReusableComponentOptions {
  /** Grow linear memory by 4 MiB at this count. @default 0 */
  growAt?: number;
  /** Trap (`unreachable`) at this count. @default 0 */
  trapAt?: number;
}

/**
 * Builds `test/fixtures/component/reusable.wat` into a component (well under a second): unlike the
 * JS engine, it answers any number of requests per instance, each with the count it has served.
 */
export async function buildReusableComponent(options: ReusableComponentOptions = {}): Promise<Uint8Array> {
  const source = (await readFile(path.join(COMPONENT_FIXTURES, 'reusable.wat'), 'utf8'))
    .replace('(i32.const GROW_AT)', `(i32.const ${options.growAt ?? 0})`)
    .replace('(i32.const TRAP_AT)', `(i32.const ${options.trapAt ?? 0})`);
  const witSource = await readFile(path.join(COMPONENT_FIXTURES, 'reusable.wit'), 'utf8');
  const jco = (await import('@bytecodealliance/jco')) as unknown as JcoBuild;
  const core = await jco.componentEmbed({ binary: await jco.parse(source), witSource, world: 'reusable' });
  return jco.componentNew(core, undefined);
}

/** Options for {@link componentSpec}. */
export interface ComponentSpecOptions {
  /** Function name. @default 'echo' */
  name?: string;
  /** Manifest env. @default {} */
  env?: Record<string, string>;
  /** Outbound allow-list. @default [] */
  allowedOutboundHosts?: string[];
  /** limits.timeout. @default '10s' */
  timeout?: string;
  /** limits.memory. @default '64MiB' */
  memory?: string;
  /** limits.concurrency. @default 1 */
  concurrency?: number;
  /** isolation. @default unset ("request") */
  isolation?: string;
  /** max_reuse. @default unset (128) */
  maxReuse?: number;
}

/** A component FunctionSpec as the manifest parser makes it. */
export function componentSpec(options: ComponentSpecOptions = {}): FunctionSpec {
  const env = Object.entries(options.env ?? {})
    .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
    .join('\n');
  const text = `name = "test"
[[function]]
name = "${options.name ?? 'echo'}"
runtime = "component"
source = "handler.wasm"
routes = ["/..."]
allowed_outbound_hosts = ${JSON.stringify(options.allowedOutboundHosts ?? [])}
${options.isolation === undefined ? '' : `isolation = ${JSON.stringify(options.isolation)}`}
${options.maxReuse === undefined ? '' : `max_reuse = ${options.maxReuse}`}
[function.limits]
timeout = "${options.timeout ?? '10s'}"
memory = "${options.memory ?? '64MiB'}"
concurrency = ${options.concurrency ?? 1}
[function.env]
${env}
`;
  const spec = parseManifest(text).functions[0];
  if (!spec) throw new Error('componentSpec: no function parsed');
  return spec;
}

/** A log sink that keeps what it is given, for assertions. */
export function memoryLog(): { lines: Array<{ stream: string; text: string }>; sink: (stream: 'stdout' | 'stderr', text: string) => void; text: () => string } {
  const lines: Array<{ stream: string; text: string }> = [];
  return {
    lines,
    sink: (stream, text) => lines.push({ stream, text }),
    text: () => lines.map((l) => `${l.stream}: ${l.text}`).join(''),
  };
}

/** A log kept in memory, as {@link memoryLog} makes it. */
export type MemoryLog = ReturnType<typeof memoryLog>;

/** Generous bound for one request or start on a busy two-core machine. */
export const COMPONENT_REQUEST_MS = 20_000;

/** Component instances a test file lights, each from its own factory, stopped together at its end. */
export class LitComponents {
  readonly #lit: Array<{ factory: ComponentFactory; instance: ComponentInstance }> = [];

  /** Lights an instance of `prepared` under `spec`, with its log kept in memory; resolves once it is ready. */
  async light(prepared: PreparedComponent, spec: FunctionSpec, options: { maxWorkers?: number } = {}): Promise<{ instance: ComponentInstance; log: MemoryLog }> {
    const log = memoryLog();
    const factory = createComponentFactory(prepared, spec, { log: log.sink, ...(options.maxWorkers === undefined ? {} : { maxWorkers: options.maxWorkers }) });
    const instance = factory.create(`test-${this.#lit.length + 1}`) as ComponentInstance;
    this.#lit.push({ factory, instance });
    await withTimeout(instance.ready, COMPONENT_REQUEST_MS, 'ready');
    return { instance, log };
  }

  /** Stops every instance lit, and closes its factory. */
  async close(): Promise<void> {
    for (const { instance, factory } of this.#lit.splice(0)) {
      await instance.stop();
      await factory.close();
    }
  }
}

/** What {@link sendTo} read back. */
export interface SentResponse {
  status: number;
  body: Buffer;
  text: string;
  /** Header names in lower case; repeated ones joined. */
  headers: Record<string, string>;
}

/** Sends one request straight to `instance` and reads its whole answer (a rejection is passed on). */
export async function sendTo(instance: Instance, url: string, init: Omit<InvocationRequestInit, 'url'> = {}): Promise<SentResponse> {
  const response = await withTimeout(instance.handle(makeInvocationRequest({ url, ...init })), COMPONENT_REQUEST_MS, `${init.method ?? 'GET'} ${url}`);
  const body = await readBody(response);
  const headers: Record<string, string> = {};
  for (const [name, value] of response.headers) {
    const key = name.toLowerCase();
    headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
  }
  return { status: response.status, body, text: body.toString('utf8'), headers };
}
