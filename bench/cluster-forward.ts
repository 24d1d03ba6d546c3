// Forwarding benchmark: the latency one hop between nodes adds. A target node:http server (node B)
// and the forwarding hops (node A) run in processes of their own; this process sends N sequential
// keep-alive GETs straight to the target, then through each hop, and prints p50/p99 of each and
// what the hop adds, as medians over several rounds.
//
// Hops, all forwarding each request to the target:
// - `forwarder`: a node:http server handing each request to PeerForwarder (the cluster's own);
// - `forwarder, http1`: the same behind the gateway's own HTTP/1.1 server (src/http1), as a node runs it;
// - `node:http agent` and `undici pool`: a node:http server forwarding with those clients instead,
//   for the choice of client PeerForwarder is built on.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { PeerForwarder } from '../src/cluster/index.js';
import { Http1Server, type ServerRequest, type ServerResponse } from '../src/http1/index.js';
import type { InvocationRequest, InvocationResponse } from '../src/instance/index.js';
import { median, percentile } from './wrk.js';

const { values: flags } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    target: { type: 'string', default: '' },
    requests: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '500' },
  },
});

const BODY = 'Hello from the target node\n';

/** Listens on a free loopback port; resolves with it. */
async function listenHttp(server: http.Server): Promise<number> {
  server.keepAliveTimeout = 65_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Node B: answers every request with a short text. */
async function runTarget(): Promise<void> {
  const port = await listenHttp(
    http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(BODY.length) });
      res.end(BODY);
    }),
  );
  process.send!({ port });
}

let nextId = 0;

/** The InvocationRequest a gateway would build from a node:http request. */
function fromNodeRequest(req: http.IncomingMessage, res: http.ServerResponse): InvocationRequest {
  const url = req.url ?? '/';
  let controller: AbortController | undefined;
  let gone = false;
  res.once('close', () => {
    if (res.writableFinished) return;
    gone = true;
    controller?.abort();
  });
  return {
    id: `b${++nextId}`,
    method: req.method ?? 'GET',
    url,
    headers: req.headers,
    body: req,
    remoteAddress: req.socket.remoteAddress ?? '',
    host: 'bench.local',
    serverPort: 0,
    route: { pattern: '/...', scriptName: '', pathInfo: url },
    get signal(): AbortSignal {
      controller ??= new AbortController();
      if (gone) controller.abort();
      return controller.signal;
    },
  };
}

/** Writes an InvocationResponse to a node:http response. */
function sendToNode(res: http.ServerResponse, response: InvocationResponse): void {
  const flat: string[] = [];
  for (const [name, value] of response.headers) flat.push(name, value);
  res.writeHead(response.status, flat);
  const body = response.body;
  if (body === null) res.end();
  else if (Buffer.isBuffer(body)) res.end(body);
  else body.pipe(res);
}

/** The same from the gateway's own server. */
function fromHttp1Request(req: ServerRequest, res: ServerResponse): InvocationRequest {
  const url = req.url;
  let controller: AbortController | undefined;
  let gone = false;
  res.onClose = (finished) => {
    if (finished) return;
    gone = true;
    controller?.abort();
  };
  return {
    id: `g${++nextId}`,
    method: req.method,
    url,
    headers: req.headers,
    get body(): Readable {
      return req.body;
    },
    remoteAddress: req.remoteAddress,
    host: 'bench.local',
    serverPort: 0,
    route: { pattern: '/...', scriptName: '', pathInfo: url },
    get signal(): AbortSignal {
      controller ??= new AbortController();
      if (gone) controller.abort();
      return controller.signal;
    },
  };
}

function sendToHttp1(res: ServerResponse, response: InvocationResponse): void {
  const flat: string[] = [];
  let length: string | undefined;
  for (const [name, value] of response.headers) {
    if (name === 'content-length') length = value;
    else flat.push(name, value);
  }
  const body = response.body;
  if (body === null || Buffer.isBuffer(body)) res.send(response.status, flat, body ?? Buffer.alloc(0));
  else res.stream(response.status, flat, body, length);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

/** Node A: one forwarding server per kind of hop; reports their ports. */
async function runHops(target: string): Promise<void> {
  const [host, portText] = target.split(':') as [string, string];
  const targetPort = Number(portText);
  const forwarder = new PeerForwarder({ node: 'bench-a' });
  const fail = (res: http.ServerResponse, err: unknown): void => {
    res.writeHead(502);
    res.end(String(err));
  };
  const viaForwarder = http.createServer((req, res) => {
    forwarder.forward(target, fromNodeRequest(req, res)).then((r) => sendToNode(res, r), (err: unknown) => fail(res, err));
  });
  const gateway = new Http1Server({
    request: (req, res) => {
      forwarder.forward(target, fromHttp1Request(req, res)).then(
        (r) => sendToHttp1(res, r),
        (err: unknown) => res.send(502, [], Buffer.from(String(err))),
      );
    },
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const viaAgent = http.createServer((req, res) => {
    const upstream = http.request({ host, port: targetPort, method: req.method, path: req.url, headers: { ...req.headers, 'x-lamplighter-hop': 'bench-a' }, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', (err) => fail(res, err));
    req.pipe(upstream);
  });
  const pool = new Pool(`http://${target}`, { connections: 256 });
  const viaUndici = http.createServer((req, res) => {
    const headers: Record<string, string | string[]> = { 'x-lamplighter-hop': 'bench-a' };
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    pool.request({ method: req.method as 'GET', path: req.url ?? '/', headers, body: hasBody ? req : null }).then((answer) => {
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
      res.writeHead(answer.statusCode, out);
      answer.body.pipe(res);
    }, (err: unknown) => fail(res, err));
  });
  process.send!({
    forwarder: await listenHttp(viaForwarder),
    gateway: await gateway.listen(0, '127.0.0.1'),
    agent: await listenHttp(viaAgent),
    undici: await listenHttp(viaUndici),
  });
}

/** Starts this file again as `role`; resolves with the child and the message it reports when ready. */
async function startRole<T>(role: string, extra: string[] = []): Promise<{ child: ChildProcess; ready: T }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--role', role, ...extra], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [ready] = (await once(child, 'message')) as [T];
  return { child, ready };
}

/** N sequential GETs on one keep-alive connection; their latencies in ms. */
async function sequential(port: number, count: number): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const latencies: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      await new Promise<void>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/bench?i=1', agent, headers: { host: 'bench.local' } }, (res) => {
            res.resume();
            res.once('end', resolve);
          })
          .once('error', reject);
      });
      latencies.push(performance.now() - start);
    }
  } finally {
    agent.destroy();
  }
  return latencies;
}

const us = (ms: number): string => `${(ms * 1000).toFixed(0)} µs`.padStart(8);

async function main(): Promise<void> {
  const requests = Number(flags.requests);
  const rounds = Number(flags.rounds);
  const warmup = Number(flags.warmup);
  const target = await startRole<{ port: number }>('target');
  const targetAddress = `127.0.0.1:${target.ready.port}`;
  const hops = await startRole<{ forwarder: number; gateway: number; agent: number; undici: number }>('hops', ['--target', targetAddress]);
  const paths: Array<[string, number]> = [
    ['direct', target.ready.port],
    ['forwarder', hops.ready.forwarder],
    ['forwarder, http1', hops.ready.gateway],
    ['node:http agent', hops.ready.agent],
    ['undici pool', hops.ready.undici],
  ];
  const results = new Map<string, Array<{ p50: number; p99: number }>>(paths.map(([name]) => [name, []]));
  try {
    for (const [, port] of paths) await sequential(port, warmup);
    for (let round = 0; round < rounds; round++) {
      // Forward then backward order, so a slow spell of a shared machine falls on all alike.
      const order = round % 2 === 0 ? paths : [...paths].reverse();
      for (const [name, port] of order) {
        const latencies = await sequential(port, requests);
        results.get(name)!.push({ p50: percentile(latencies, 50), p99: percentile(latencies, 99) });
      }
    }
  } finally {
    target.child.kill();
    hops.child.kill();
  }
  const rows = paths.map(([name]) => {
    const rs = results.get(name)!;
    return { name, p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)) };
  });
  const direct = rows[0]!;
  console.log(`Forwarding between nodes on loopback — ${new Date().toISOString()}, node ${process.version}`);
  console.log(`${requests} sequential keep-alive GETs per round, ${rounds} rounds; medians over the rounds`);
  console.log(`${'path'.padEnd(36)}${'p50'.padStart(9)}${'p99'.padStart(9)}${'added p50'.padStart(11)}${'added p99'.padStart(11)}`);
  for (const row of rows) {
    const added = row === direct ? ['', ''] : [us(row.p50 - direct.p50), us(row.p99 - direct.p99)];
    console.log(`${(row === direct ? 'client → target' : `client → ${row.name} → target`).padEnd(36)} ${us(row.p50)} ${us(row.p99)}  ${added[0]!.padStart(9)}  ${added[1]!.padStart(9)}`);
  }
}

if (flags.role === 'target') await runTarget();
else if (flags.role === 'hops') await runHops(flags.target);
else await main();
