// A cluster of real nats-servers joined by routes, with clustered JetStream, for tests of a server's loss.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, startNatsServer, type NatsServer } from './nats-server.js';

/** Options for {@link startNatsCluster}. */
export interface NatsClusterOptions {
  /** How long to wait for the routes to form and JetStream to elect a meta leader, in ms. @default 30000 */
  readyTimeoutMs?: number;
}

/** A running cluster of nats-servers. */
export interface NatsCluster {
  /** The servers, in the order of {@link urls}. */
  readonly servers: NatsServer[];
  /** Each server's client URL, `nats://127.0.0.1:PORT`. */
  readonly urls: string[];
  /** Kills server `i` at once (SIGKILL); its JetStream files stay for {@link restart}. */
  kill(i: number): Promise<void>;
  /** Starts server `i` again and resolves once JetStream answers through it. */
  restart(i: number): Promise<void>;
  /** Stops every server and removes their directories. */
  close(): Promise<void>;
}

const clusterName = 'lamplighter-test';

/**
 * Starts `size` nats-servers routed to each other with clustered JetStream, and resolves once a
 * stream with `size` replicas can be created, so a test can use replicated KV at once.
 */
export async function startNatsCluster(size = 3, options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) routePorts.push(await freePort());
  const started = await Promise.allSettled(
    routePorts.map((routePort, i) =>
      startNatsServer({
        name: `ll-nats-${i}`,
        extraConfig: [
          'cluster {',
          `  name: "${clusterName}"`,
          `  listen: "127.0.0.1:${routePort}"`,
          `  routes: [${routePorts
            .filter((_, j) => j !== i)
            .map((p) => `"nats-route://127.0.0.1:${p}"`)
            .join(', ')}]`,
          '}',
        ].join('\n'),
      }),
    ),
  );
  const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const closeAll = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.close()));
  };
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await closeAll();
    throw failed.reason;
  }
  const urls = servers.map((s) => s.url);
  try {
    await _waitForJetStream(urls, size, readyTimeoutMs);
  } catch (err) {
    const logs = servers.map((s) => `${s.name}: ${s.output().trim().split('\n').slice(-3).join(' | ')}`).join('\n');
    await closeAll();
    throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
  }
  return {
    servers,
    urls,
    kill: (i) => servers[_index(i, size)]!.kill(),
    restart: async (i) => {
      const server = servers[_index(i, size)]!;
      await server.restart();
      await _waitForJetStream([server.url], 0, readyTimeoutMs);
    },
    close: closeAll,
  };
}

function _index(i: number, size: number): number {
  if (!Number.isInteger(i) || i < 0 || i >= size) throw new RangeError(`no server ${i} in a cluster of ${size}`);
  return i;
}

interface _ApiReply {
  error?: { code: number; description: string };
}

/**
 * Polls JetStream through `urls` until it answers; with `replicas` > 0, until a stream with that many
 * replicas can be created too (every server has joined the meta group), then deletes that stream.
 */
async function _waitForJetStream(urls: string[], replicas: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let nc: NatsConnection | undefined;
  let last = 'no answer yet';
  try {
    for (let attempt = 0; attempt < 1000 && Date.now() < until; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 200));
      try {
        nc ??= await connect({ servers: urls, timeout: 2000, reconnect: false, name: 'lamplighter-cluster-probe' });
        const info = await _api(nc, '$JS.API.INFO', {});
        if (info.error) {
          last = `$JS.API.INFO: ${info.error.description}`;
          continue;
        }
        if (replicas <= 0) return;
        const stream = `LL_READY_${attempt}`;
        const created = await _api(nc, `$JS.API.STREAM.CREATE.${stream}`, {
          name: stream,
          subjects: [`lamplighter.ready.${attempt}`],
          storage: 'memory',
          num_replicas: replicas,
        });
        if (created.error) {
          last = `creating a stream with ${replicas} replicas: ${created.error.description}`;
          continue;
        }
        await _api(nc, `$JS.API.STREAM.DELETE.${stream}`, {});
        return;
      } catch (err) {
        last = (err as Error).message;
        if (nc?.isClosed()) nc = undefined;
      }
    }
  } finally {
    await nc?.close();
  }
  throw new Error(`JetStream was not ready on ${urls.join(', ')} within ${timeoutMs} ms (last: ${last})`);
}

async function _api(nc: NatsConnection, subject: string, body: object): Promise<_ApiReply> {
  const reply = await nc.request(subject, JSON.stringify(body), { timeout: 2000 });
  return reply.json<_ApiReply>();
}
