// Artifact bytes in a JetStream Object Store, each object named by its sha256 hex and verified on every read.
import type { JetStreamManager } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import type { DamageLog } from './damage-log.js';
import { digestOf } from './file-store.js';

const DIGEST = /^[0-9a-f]{64}$/;

/** How long a read may wait for the next chunk before it gives up (chunks missing, or the server gone). */
const CHUNK_WAIT_MS = 15_000;

/** The content-addressed half of the JetStream store. */
export class JetStreamBlobs {
  readonly #os: ObjectStore;
  readonly #jsm: JetStreamManager;
  readonly #bucket: string;
  readonly #damage: DamageLog;
  /**
   * Objects read back intact, by digest → the object's nuid then. An upload writes its chunks
   * under a fresh nuid, so an object whose nuid is unchanged holds the bytes already hashed.
   */
  readonly #verified = new Map<string, string>();

  constructor(os: ObjectStore, jsm: JetStreamManager, bucket: string, damage: DamageLog) {
    this.#os = os;
    this.#jsm = jsm;
    this.#bucket = bucket;
    this.#damage = damage;
  }

  /** How damage reports and errors name an object: its bucket and name. */
  name(digest: string): string {
    return `obj:${this.#bucket}/${digest}`;
  }

  #check(digest: string): void {
    if (!DIGEST.test(digest)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `'${digest}' is not a sha256 hex digest`);
  }

  /** Whether an object of that name is stored (not whether it is intact: see {@link has}). */
  async exists(digest: string): Promise<boolean> {
    this.#check(digest);
    const info = await this.#os.info(digest);
    return info !== null && !info.deleted;
  }

  /** Whether the blob is stored intact; a damaged one is reported and counts as absent. */
  async has(digest: string): Promise<boolean> {
    this.#check(digest);
    const info = await this.#os.info(digest);
    if (info === null || info.deleted) return false;
    if (this.#verified.get(digest) === info.nuid) return true;
    try {
      return (await this.#read(digest)) !== undefined;
    } catch (err) {
      if (err instanceof LamplighterError && err.code === ErrorCodes.STORE_DAMAGED) return false;
      throw err;
    }
  }

  /** Stores bytes unless an intact copy is there already (a damaged one is replaced); resolves with the digest. */
  async put(bytes: Uint8Array, digest?: string): Promise<string> {
    const actual = digestOf(bytes);
    if (digest !== undefined && digest !== actual) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Blob digest mismatch: expected ${digest}, got ${actual}`);
    }
    if (await this.has(actual)) return actual;
    const info = await this.#os.putBlob({ name: actual }, bytes);
    // Hashed just now, on the way in: what was written is what was asked for.
    this.#verified.set(actual, info.nuid);
    this.#damage.rewritten(this.name(actual));
    return actual;
  }

  /** The blob's bytes, verified against the digest (LL_NOT_FOUND, or LL_STORE_DAMAGED). */
  async get(digest: string): Promise<Buffer> {
    this.#check(digest);
    const bytes = await this.#read(digest);
    if (!bytes) throw new LamplighterError(ErrorCodes.NOT_FOUND, `No artifact with digest ${digest}`);
    return bytes;
  }

  /** Reads an object and checks its bytes against its name. Missing: undefined. Damaged: reported and thrown. */
  async #read(digest: string): Promise<Buffer | undefined> {
    const result = await this.#os.get(digest);
    if (result === null) return undefined;
    const { nuid, chunks: expected } = result.info;
    // Chunks gone from the stream would leave the read waiting for data that never comes.
    const stored = await this.#storedChunks(nuid);
    if (stored < expected) {
      await result.data.cancel().catch(() => undefined);
      return this.#damaged(digest, nuid, `has ${stored} of the ${expected} chunks it was uploaded in`);
    }
    const chunks: Uint8Array[] = [];
    const reader = result.data.getReader();
    try {
      for (;;) {
        const next = await readWithin(reader, CHUNK_WAIT_MS);
        if (next === 'timeout') {
          await reader.cancel().catch(() => undefined);
          throw new LamplighterError(
            ErrorCodes.INTERNAL,
            `Reading the artifact with sha256 ${digest} from ${this.name(digest)} stalled: no data for ${CHUNK_WAIT_MS / 1000} s (its chunks are missing or NATS stopped answering). Try again, or deploy the app again to upload it`,
          );
        }
        if (next.done) break;
        chunks.push(next.value);
      }
    } catch (err) {
      if (err instanceof LamplighterError) throw err;
      // The Object Store checks the chunks against the digest it recorded at upload.
      if (/corrupt object/.test((err as Error).message)) return this.#damaged(digest, nuid, `has chunks that do not match the digest recorded at upload (${(err as Error).message.split('\n')[0]})`);
      throw err;
    }
    const bytes = Buffer.concat(chunks);
    const actual = digestOf(bytes);
    if (actual !== digest) return this.#damaged(digest, nuid, `holds ${bytes.length} bytes whose sha256 is ${actual}, not the ${digest} it is named after`);
    this.#verified.set(digest, nuid);
    return bytes;
  }

  /** How many chunks of an upload the object stream holds. */
  async #storedChunks(nuid: string): Promise<number> {
    const subject = `$O.${this.#bucket}.C.${nuid}`;
    const info = await this.#jsm.streams.info(`OBJ_${this.#bucket}`, { subjects_filter: subject });
    return info.state.subjects?.[subject] ?? 0;
  }

  #damaged(digest: string, nuid: string, reason: string): never {
    this.#verified.delete(digest);
    const name = this.name(digest);
    // Left in place: every read refuses it, and the next upload of the digest replaces it.
    this.#damage.report('blob', name, nuid, reason);
    throw new LamplighterError(ErrorCodes.STORE_DAMAGED, `The artifact with sha256 ${digest} is damaged in the store: ${name} ${reason}. Deploy the app again to upload it`);
  }
}

/** The reader's next chunk, or 'timeout' when none comes within `ms`. */
async function readWithin(reader: ReadableStreamDefaultReader<Uint8Array>, ms: number): Promise<ReadableStreamReadResult<Uint8Array> | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    return await Promise.race([reader.read(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
