// End-to-end: WAGI functions served through a real node on loopback, real modules built from C.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

async function get(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(url, { redirect: 'manual', ...init });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** GET with a chosen Host header (fetch does not let a caller set it). */
function getWithHost(base: string, path: string, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${path}`, { headers: { host } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
  });
}

function parseEnvDump(text: string): { env: Map<string, string>; args: string[]; body: string } {
  const env = new Map<string, string>();
  const args: string[] = [];
  let body = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('ENV ')) {
      const eq = line.indexOf('=');
      env.set(line.slice(4, eq), line.slice(eq + 1));
    } else if (line.startsWith('ARG ')) args.push(line.slice(line.indexOf('=') + 1));
    else if (line.startsWith('BODY ')) body = line.slice(5);
  }
  return { env, args, body };
}

describe('wagi gateway', () => {
  let node: TestNode;

  before(async () => {
    node = await startTestNode();
    await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello', '/hello/...'], '[function.env]\nGREETING = "Howdy"'), { 'hello.wasm': wagiFixture('../../../examples/hello/hello') });
    await node.deploy(wagiApp('envdump', 'env', 'env.wasm', ['/env/...'], '[function.env]\nAPP_SETTING = "from-manifest"'), { 'env.wasm': wagiFixture('env') });
    await node.deploy(wagiApp('counter', 'counter', 'counter.wasm', ['/counter']), { 'counter.wasm': wagiFixture('counter') });
    await node.deploy(wagiApp('sandbox', 'sandbox', 'sandbox.wasm', ['/sandbox']), { 'sandbox.wasm': wagiFixture('sandbox') });
    await node.deploy(wagiApp('output', 'output', 'output.wasm', ['/output']), { 'output.wasm': wagiFixture('output') });
    await node.deploy(wagiApp('trap', 'trap', 'trap.wasm', ['/trap']), { 'trap.wasm': wagiFixture('trap') });
    await node.deploy(wagiApp('loop', 'loop', 'loop.wasm', ['/loop'], '[function.limits]\ntimeout = "400ms"'), { 'loop.wasm': wagiFixture('loop') });
    await node.deploy(wagiApp('alloc', 'alloc', 'alloc.wasm', ['/alloc'], '[function.limits]\nmemory = "32MiB"'), { 'alloc.wasm': wagiFixture('alloc') });
    await node.deploy(wagiApp('big', 'big', 'big.wasm', ['/big'], '[function.limits]\nresponse_size = "256KiB"'), { 'big.wasm': wagiFixture('big') });
    await node.deploy(wagiApp('echo', 'echo', 'echo.wasm', ['/echo'], '[function.limits]\nbody_size = "2MiB"'), { 'echo.wasm': wagiFixture('echo') });
    await node.deploy(wagiApp('slow', 'slow', 'slow.wasm', ['/slow']), { 'slow.wasm': wagiFixture('slow') });
    await node.deploy(
      `name = "hosts"\n[[function]]\nname = "on-host"\nsource = "hello.wasm"\nroutes = ["/hello"]\nhosts = ["api.example.test", "*.tenant.test"]\n[function.env]\nGREETING = "Host"\n`,
      { 'hello.wasm': wagiFixture('../../../examples/hello/hello') },
    );
  });
  after(() => node.close());

  test('wagi gateway — serves a module built from C with its manifest env', async () => {
    const res = await get(`${node.url}/hello`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'Howdy from Lamplighter!\n');
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    assert.match(res.headers.get('x-lamplighter-cold-start') ?? '', /^(true|false)$/);
  });

  test('wagi gateway — unknown route is 404 with a JSON error', async () => {
    const res = await get(`${node.url}/nothing-here`);
    assert.equal(res.status, 404);
    assert.equal(JSON.parse(res.text).error.code, 'LL_ROUTE_NOT_FOUND');
  });

  test('wagi gateway — routes by host, exact and wildcard, before the catch-all host', async () => {
    assert.equal(await getWithHost(node.url, '/hello', 'api.example.test'), 'Host from Lamplighter!\n');
    assert.equal(await getWithHost(node.url, '/hello', 'API.Example.Test:8080'), 'Host from Lamplighter!\n');
    assert.equal(await getWithHost(node.url, '/hello', 'acme.tenant.test:8080'), 'Host from Lamplighter!\n');
    assert.equal(await getWithHost(node.url, '/hello', 'deep.acme.tenant.test'), 'Host from Lamplighter!\n');
    assert.equal(await getWithHost(node.url, '/hello', 'tenant.test'), 'Howdy from Lamplighter!\n');
    assert.equal(await getWithHost(node.url, '/hello', 'elsewhere.test'), 'Howdy from Lamplighter!\n');
  });

  test('wagi gateway — follows the WAGI convention for environment, argv and stdin', async () => {
    const res = await get(`${node.url}/env/some/path%20x?name=Ada&flag&x=a%2Bb`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', 'x-custom-thing': 'yes' },
      body: 'the body',
    });
    assert.equal(res.status, 200);
    const { env, args, body } = parseEnvDump(res.text);
    assert.equal(env.get('REQUEST_METHOD'), 'POST');
    assert.equal(env.get('SCRIPT_NAME'), '/env');
    assert.equal(env.get('PATH_INFO'), '/some/path x');
    assert.equal(env.get('QUERY_STRING'), 'name=Ada&flag&x=a%2Bb');
    assert.equal(env.get('SERVER_NAME'), '127.0.0.1');
    assert.equal(env.get('SERVER_PORT'), String(node.platform.port));
    assert.equal(env.get('SERVER_PROTOCOL'), 'HTTP/1.1');
    assert.equal(env.get('CONTENT_TYPE'), 'text/plain');
    assert.equal(env.get('CONTENT_LENGTH'), '8');
    assert.match(env.get('REMOTE_ADDR') ?? '', /^(127\.0\.0\.1|::ffff:127\.0\.0\.1)$/);
    assert.equal(env.get('X_FULL_URL'), `http://127.0.0.1:${node.platform.port}/env/some/path%20x?name=Ada&flag&x=a%2Bb`);
    assert.equal(env.get('X_MATCHED_ROUTE'), '/env/...');
    assert.equal(env.get('HTTP_X_CUSTOM_THING'), 'yes');
    assert.equal(env.get('HTTP_HOST'), `127.0.0.1:${node.platform.port}`);
    assert.equal(env.get('APP_SETTING'), 'from-manifest');
    assert.deepEqual(args.slice(1), ['name=Ada', 'flag', 'x=a+b']);
    assert.equal(body, 'the body');
  });

  test('wagi gateway — a handler sees only what its manifest grants, with working clocks and random', async () => {
    const before = Date.now() / 1000;
    const res = await get(`${node.url}/sandbox`);
    const lines = new Map(res.text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.equal(lines.get('HOME'), '(unset)');
    assert.equal(lines.get('PATH'), '(unset)');
    assert.notEqual(lines.get('open_etc_passwd'), 'ok');
    assert.notEqual(lines.get('opendir_root'), 'ok');
    // Refused with an errno, not merely absent from the output.
    assert.match(lines.get('open_etc_passwd') ?? '', /^E[A-Z]+/);
    assert.match(lines.get('opendir_root') ?? '', /^E[A-Z]+/);
    assert.ok(Math.abs(Number(lines.get('realtime')) - before) < 5, `realtime ${lines.get('realtime')} is near ${before}`);
    assert.ok(Number(lines.get('monotonic_ns')) > 0);
    assert.match(lines.get('random') ?? '', /^[0-9a-f]{32}$/);
    assert.notEqual(lines.get('random'), lines.get('random2'));
    const again = await get(`${node.url}/sandbox`);
    assert.notEqual(again.text.match(/random=(\w+)/)?.[1], lines.get('random'));
  });

  test('wagi gateway — every request runs in a fresh instance (a static counter reads 1)', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await get(`${node.url}/counter`)).text.trim(), 'counter=1');
    const burst = await Promise.all(Array.from({ length: 20 }, () => get(`${node.url}/counter`)));
    for (const res of burst) assert.equal(res.text.trim(), 'counter=1');
  });

  test('wagi gateway — status, location and repeated headers come from the handler', async () => {
    const teapot = await get(`${node.url}/output?teapot`);
    assert.equal(teapot.status, 418);
    assert.equal(teapot.text, 'teapot\n');
    const redirect = await get(`${node.url}/output?redirect`);
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), '/elsewhere');
    const headers = await get(`${node.url}/output?headers`);
    assert.equal(headers.headers.get('x-one'), '1');
    assert.equal(headers.headers.get('x-two'), '2');
    assert.deepEqual(headers.headers.getSetCookie(), ['a=1', 'b=2']);
    const crlf = await get(`${node.url}/output?crlf`);
    assert.equal(crlf.status, 200);
    assert.equal(crlf.headers.get('x-line-ends'), 'crlf');
  });

  test('wagi gateway — malformed WAGI output is a 502 naming the fault, and the function keeps serving', async () => {
    for (const [mode, reason] of [['noblank', /no blank line/], ['nocontenttype', /no content-type/], ['badstatus', /status 'abc'/], ['control', /control character/]] as const) {
      const res = await get(`${node.url}/output?${mode}`);
      assert.equal(res.status, 502, mode);
      const error = JSON.parse(res.text).error;
      assert.equal(error.code, 'LL_BAD_HANDLER_RESPONSE');
      assert.match(error.message, reason);
    }
    assert.equal((await get(`${node.url}/output`)).status, 200);
  });

  test('wagi gateway — a trap is a 500 with a request id, the trap goes to the log, others keep serving', async () => {
    const res = await get(`${node.url}/trap`);
    assert.equal(res.status, 500);
    const error = JSON.parse(res.text).error;
    assert.equal(error.code, 'LL_HANDLER_TRAP');
    assert.equal(error.requestId, res.headers.get('x-request-id'));
    const log = node.platform.logs.recent(['trap']).map((l) => l.text).join('\n');
    assert.match(log, /about to trap/);
    assert.match(log, new RegExp(`trap: .*unreachable.*${error.requestId}`));
    assert.equal((await get(`${node.url}/trap`)).status, 500);
    assert.equal((await get(`${node.url}/hello`)).status, 200);
  });

  test('wagi gateway — a runaway handler gets 504 at its deadline while other requests are served', async () => {
    const replaced = node.platform.pool.replacements;
    const started = Date.now();
    const runaway = get(`${node.url}/loop`);
    // While the loop burns one worker, the other functions keep answering.
    const others = await Promise.all(Array.from({ length: 20 }, () => get(`${node.url}/counter`)));
    for (const res of others) assert.equal(res.status, 200);
    const res = await runaway;
    assert.equal(res.status, 504);
    assert.equal(JSON.parse(res.text).error.code, 'LL_TIMEOUT');
    assert.ok(Date.now() - started < 5000);
    // The pool's watchdog ends the looping worker within one period of the deadline.
    const until = Date.now() + 2000;
    while (node.platform.pool.replacements === replaced && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.ok(node.platform.pool.replacements > replaced, 'the worker running the loop was replaced');
    assert.equal((await get(`${node.url}/hello`)).status, 200);
    assert.equal((await get(`${node.url}/loop`)).status, 504);
  });

  test('wagi gateway — requests arriving while a handler is slow are served by another worker', async () => {
    const slow = get(`${node.url}/slow?ms=1500`);
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    // The busy worker is marked so after 20 ms and gets nothing more until it answers.
    const fast = await Promise.all(Array.from({ length: 40 }, () => get(`${node.url}/counter`).then((r) => ({ status: r.status, at: Date.now() - started }))));
    for (const r of fast) assert.equal(r.status, 200);
    const slowest = Math.max(...fast.map((r) => r.at));
    assert.ok(slowest < 1200, `the last quick request took ${slowest} ms: it waited for the slow one`);
    assert.equal((await slow).text.trim(), 'slept=1500');
  });

  test('wagi gateway — the memory limit makes allocation fail inside the module', async () => {
    const within = await get(`${node.url}/alloc?mb=8`);
    assert.equal(within.text.trim(), 'allocated_mb=8 failed=no');
    const over = await get(`${node.url}/alloc?mb=100`);
    assert.equal(over.status, 200);
    const match = /allocated_mb=(\d+) failed=yes/.exec(over.text);
    assert.ok(match, over.text);
    assert.ok(Number(match[1]) < 32);
    assert.equal((await get(`${node.url}/alloc?mb=4`)).text.trim(), 'allocated_mb=4 failed=no');
  });

  test('wagi gateway — responses over the size cap are refused with 502', async () => {
    const ok = await get(`${node.url}/big?bytes=200000`);
    assert.equal(ok.status, 200);
    assert.equal(ok.text.length, 200000);
    const tooBig = await get(`${node.url}/big?bytes=400000`);
    assert.equal(tooBig.status, 502);
    assert.equal(JSON.parse(tooBig.text).error.code, 'LL_RESPONSE_TOO_LARGE');
  });

  test('wagi gateway — request bodies are passed byte for byte and capped with 413', async () => {
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const res = await fetch(`${node.url}/echo?a=1`, { method: 'PUT', body, headers: { 'x-test': 'hdr' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-echo-method'), 'PUT');
    assert.equal(res.headers.get('x-echo-query'), 'a=1');
    assert.equal(res.headers.get('x-echo-header'), 'hdr');
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(body));
    const tooBig = await fetch(`${node.url}/echo`, { method: 'POST', body: Buffer.alloc(3 * 1024 * 1024) });
    assert.equal(tooBig.status, 413);
    await tooBig.text();
    const log = node.platform.logs.recent(['echo']).map((l) => l.text);
    assert.ok(log.includes('echo: PUT '), log.join('\n'));
  });

  test('wagi gateway — an encoded NUL in the path or query is refused, not passed on to forge variables (regression)', async () => {
    for (const path of ['/env/x%00HTTP_X_TEST=forged', '/env/x?a%00b']) {
      const res = await get(`${node.url}${path}`, { headers: { 'x-test': 'real' } });
      assert.equal(res.status, 400, path);
      assert.match(JSON.parse(res.text).error.message, /NUL/);
    }
    assert.equal((await get(`${node.url}/env/fine`)).status, 200);
  });

  test('wagi gateway — a 200-request concurrent burst is answered in full', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => get(`${node.url}/hello/${i}`)));
    assert.equal(results.filter((r) => r.status === 200).length, 200);
    for (const r of results) assert.equal(r.text, 'Howdy from Lamplighter!\n');
  });

  test('wagi gateway — metrics expose instances, cold starts, requests, pending and latency', async () => {
    const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
    assert.match(text, /^lamplighter_instances\{function="hello"\} [1-9]/m);
    assert.match(text, /^lamplighter_instances\{function="on-host"\} \d+/m);
    assert.match(text, /^lamplighter_cold_starts_total\{function="hello"\} [1-9]/m);
    assert.match(text, /^lamplighter_requests_total\{function="hello",code="200"\} [1-9]/m);
    assert.match(text, /^lamplighter_requests_total\{function="trap",code="500"\} [1-9]/m);
    assert.match(text, /^lamplighter_pending_requests\{function="hello"\} 0/m);
    assert.match(text, /^lamplighter_request_duration_seconds_bucket\{le="0.005",function="hello"\} \d+/m);
  });
});

describe('wagi deploy checks', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
    await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello']), { 'hello.wasm': wagiFixture('../../../examples/hello/hello') });
  });
  after(() => node.close());

  async function rejects(name: string, bytes: Uint8Array, reason: RegExp, extra = ''): Promise<void> {
    await assert.rejects(node.deploy(wagiApp(name, name, 'm.wasm', [`/${name}`], extra), { 'm.wasm': bytes }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'LL_MODULE_INVALID');
      assert.match(err.message, new RegExp(`function '${name}'`));
      assert.match(err.message, reason);
      return true;
    });
    // Nothing half-deployed: the route does not exist, and the rest still serves.
    assert.equal((await fetch(`${node.url}/${name}`)).status, 404);
    assert.equal((await fetch(`${node.url}/hello`)).status, 200);
  }

  test('wagi deploy — rejects bytes that are not WebAssembly', async () => {
    await rejects('garbage', Buffer.from('this is not wasm at all'), /Not a WebAssembly module/);
  });

  test('wagi deploy — rejects a truncated module with the compiler reason', async () => {
    const hello = await readFile(wagiFixture('counter'));
    await rejects('truncated', hello.subarray(0, 2000), /Malformed|Not a valid WebAssembly module/);
  });

  test('wagi deploy — rejects a component given as a WAGI module', async () => {
    await rejects('component', Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]), /component/);
  });

  test('wagi deploy — rejects a module that is not a WASI command', async () => {
    await rejects('reactor', Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]), /_start|linear memory/);
  });

  test('wagi deploy — rejects unknown imports and names them', async () => {
    await rejects('imports', await readFile(wagiFixture('unknown_import')), /env\.host_secret/);
  });

  test('wagi deploy — rejects a module whose initial memory is over the limit', async () => {
    await rejects('bigmem', await readFile(wagiFixture('bigmem')), /initial memory.*over the limit/, '[function.limits]\nmemory = "64MiB"');
  });

  test('wagi deploy — the same module is accepted under a higher limit', async () => {
    await node.deploy(wagiApp('bigmem-ok', 'bigmem-ok', 'm.wasm', ['/bigmem-ok'], '[function.limits]\nmemory = "128MiB"'), { 'm.wasm': wagiFixture('bigmem') });
    assert.equal((await fetch(`${node.url}/bigmem-ok`)).status, 200);
  });

  test('wagi deploy — a function name or route taken by another app is a conflict', async () => {
    await assert.rejects(node.deploy(wagiApp('other', 'hello', 'm.wasm', ['/other']), { 'm.wasm': wagiFixture('counter') }), /function 'hello' is already deployed by app 'hello'/);
    await assert.rejects(node.deploy(wagiApp('other', 'other', 'm.wasm', ['/hello']), { 'm.wasm': wagiFixture('counter') }), /already taken by function 'hello'/);
    assert.equal((await fetch(`${node.url}/other`)).status, 404);
  });
});
