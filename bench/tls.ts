// TLS benchmark: the cost of HTTPS on the gateway's HTTP/1.1 server against plain HTTP, measured in
// one run: a new connection per request (handshake included), and requests on one kept-alive connection.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Http1Server } from '../src/http1/index.js';
import { makeTestCertificates } from '../src/testing/index.js';
import { TlsCertificates } from '../src/tls/index.js';

const { values: flags } = parseArgs({ options: { requests: { type: 'string', default: '1000' } } });
const REQUESTS = Number(flags.requests);
const BODY = Buffer.from('hello\n');

type Get = (agent: http.Agent | false) => Promise<void>;

async function timeRequests(get: Get, agent: http.Agent | false): Promise<{ perRequestUs: number; p99Us: number }> {
  for (let i = 0; i < 50; i++) await get(agent); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const start = performance.now();
    await get(agent);
    samples.push((performance.now() - start) * 1000);
  }
  samples.sort((a, b) => a - b);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return { perRequestUs: Math.round(mean), p99Us: Math.round(samples[Math.floor(samples.length * 0.99)]!) };
}

function getter(port: number, ca: Buffer | undefined): Get {
  return (agent) =>
    new Promise((resolve, reject) => {
      const options = { host: '127.0.0.1', port, path: '/', agent, ...(ca ? { ca, servername: 'localhost' } : {}) };
      const req = (ca ? https : http).get(options, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
    });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-bench-tls-'));
  const certs = await makeTestCertificates(dir);
  const ca = await readFile(certs.ca);
  const tls = await TlsCertificates.load([{ cert: certs.serverCert, key: certs.serverKey }], { watch: false });
  const handlers = { request: (_req: unknown, res: { send(status: number, headers: string[], body: Buffer): void }) => res.send(200, ['content-type', 'text/plain'], BODY) };
  const plain = new Http1Server(handlers);
  const secure = new Http1Server(handlers, { tls });
  const plainPort = await plain.listen(0, '127.0.0.1');
  const securePort = await secure.listen(0, '127.0.0.1');
  try {
    const rows: Array<[string, { perRequestUs: number; p99Us: number }]> = [];
    rows.push(['http, new connection per request', await timeRequests(getter(plainPort, undefined), false)]);
    rows.push(['https, new connection per request (P-256 certificate)', await timeRequests(getter(securePort, ca), false)]);
    const plainAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const secureAgent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    rows.push(['http, one kept-alive connection', await timeRequests(getter(plainPort, undefined), plainAgent)]);
    rows.push(['https, one kept-alive connection', await timeRequests(getter(securePort, ca), secureAgent)]);
    plainAgent.destroy();
    secureAgent.destroy();
    console.log(`TLS benchmark, ${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${REQUESTS} sequential requests each`);
    for (const [what, r] of rows) console.log(`  ${what.padEnd(56)} mean ${String(r.perRequestUs).padStart(6)} µs   p99 ${String(r.p99Us).padStart(6)} µs`);
  } finally {
    await plain.close();
    await secure.close();
    tls.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
