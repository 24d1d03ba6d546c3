// Variable values kept in the cluster: a JetStream KV bucket every node reads, set through the
// admin API of any node (`lamplighter variables set`). Values are read at each build, never cached.
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { VARIABLE_NAME } from '../manifest/index.js';
import type { VariableProvider } from './variable-provider.js';

/** Longest value kept, in bytes: a variable is configuration, not data. */
export const MAX_VARIABLE_BYTES = 64 * 1024;

/** Options for {@link ClusterVariables.open}. */
export interface ClusterVariablesOptions {
  /** Bucket name prefix, the store's: `<prefix>-variables`. @default 'lamplighter' */
  prefix?: string;
  /** Copies JetStream keeps. @default 1 */
  replicas?: number;
  /** Longest wait for JetStream, in ms. @default 5000 */
  timeoutMs?: number;
}

function checkName(name: string): void {
  if (!VARIABLE_NAME.test(name)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `'${name}' is not a variable name: use lower-case letters, digits and underscores, starting with a letter`);
}

/** The cluster's variables: a provider for builds, and what the admin API sets and lists. */
export class ClusterVariables implements VariableProvider {
  readonly #kv: KV;
  readonly bucket: string;

  private constructor(kv: KV, bucket: string) {
    this.#kv = kv;
    this.bucket = bucket;
  }

  /** Opens (creating when missing) the cluster's variables bucket on `nc`. */
  static async open(nc: NatsConnection, options: ClusterVariablesOptions = {}): Promise<ClusterVariables> {
    const bucket = `${options.prefix ?? 'lamplighter'}-variables`;
    const kvm = new Kvm(jetstream(nc, { timeout: options.timeoutMs ?? 5000 }));
    const kv = await kvm.create(bucket, { replicas: options.replicas ?? 1, history: 1, allow_direct: false, description: 'Lamplighter app variable values' });
    return new ClusterVariables(kv, bucket);
  }

  describe(name: string): string {
    return `\`lamplighter variables set ${name} …\` (the cluster's variables)`;
  }

  async get(name: string): Promise<string | undefined> {
    if (!VARIABLE_NAME.test(name)) return undefined;
    const entry = await this.#kv.get(name);
    if (!entry || entry.operation !== 'PUT') return undefined;
    return entry.string();
  }

  /** Sets `name` for every node; used by the next build of each app that declares it. */
  async set(name: string, value: string): Promise<void> {
    checkName(name);
    if (Buffer.byteLength(value) > MAX_VARIABLE_BYTES) throw new LamplighterError(ErrorCodes.BODY_TOO_LARGE, `Variable '${name}' is ${Buffer.byteLength(value)} bytes; values are at most ${MAX_VARIABLE_BYTES}`);
    await this.#kv.put(name, value);
  }

  /** Removes `name`; false when it had no value. */
  async remove(name: string): Promise<boolean> {
    checkName(name);
    const had = (await this.get(name)) !== undefined;
    if (had) await this.#kv.delete(name);
    return had;
  }

  /** The names that have values, sorted; never the values. */
  async names(): Promise<string[]> {
    // keys() leaves out deleted and purged keys: one pass, no read per key.
    const out: string[] = [];
    for await (const key of await this.#kv.keys()) out.push(key);
    return out.sort();
  }
}
