// The dashboard's server side over HTTP: public page, guarded data, session cookies, CSRF, caching.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { quantile, SeriesSampler } from '../src/dashboard/series-sampler.js';
import { Metrics } from '../src/observability/index.js';
import { SessionStore } from '../src/dashboard/sessions.js';
import { startTestNode, wagiFixture, type TestNode } from '../src/testing/index.js';

const LOGIN = { 'x-lamplighter-dashboard': 'login' };

function demoApp(fixture: string): string {
  return `name = "demo"\n\n[[function]]\nname = "web"\nsource = "${fixture}.wasm"\nroutes = ["/web"]\n`;
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

describe('dashboard API', () => {
  let node: TestNode;
  let cookie = '';
  /** The cookie and the session's secret, as the page sends them. */
  let session: Record<string, string> = {};

  before(async () => {
    node = await startTestNode();
    await node.deploy(demoApp('output'), { 'output.wasm': wagiFixture('output') });
    await node.deploy(demoApp('echo'), { 'echo.wasm': wagiFixture('echo') });
  });
  after(() => node.close());

  const login = (token: string, headers: Record<string, string> = LOGIN): Promise<Response> =>
    fetch(`${node.adminUrl}/ui/api/session`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ token }) });

  test('dashboard — the page is public, with a self-only CSP and revalidated caching', async () => {
    for (const path of ['/ui', '/ui/']) {
      const res = await fetch(`${node.adminUrl}${path}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /script-src 'self';/);
      assert.doesNotMatch(csp, /unsafe|\*|https?:/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.match(await res.text(), /<script type="module" src="\/ui\/app.js">/);
    }
    const first = await fetch(`${node.adminUrl}/ui/app.js`);
    assert.equal(first.headers.get('content-type'), 'text/javascript; charset=utf-8');
    const etag = first.headers.get('etag') ?? '';
    assert.ok(etag);
    await first.arrayBuffer();
    const again = await fetch(`${node.adminUrl}/ui/app.js`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
  });

  test('dashboard — browser libraries are served from their packages, versioned and immutable', async () => {
    const vendor = await (await fetch(`${node.adminUrl}/ui/vendor.js`)).text();
    const urls = [...vendor.matchAll(/from '([^']+)'/g)].map((m) => m[1]!);
    assert.equal(urls.length, 3);
    for (const url of urls) {
      assert.match(url, /^\/ui\/vendor\/(preact|htm|uplot)@\d+\.\d+\.\d+\/[a-z]+\.mjs$/);
      const res = await fetch(`${node.adminUrl}${url}`);
      assert.equal(res.status, 200, url);
      assert.equal(res.headers.get('content-type'), 'text/javascript; charset=utf-8');
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.match(await res.text(), /export/);
    }
    const html = await (await fetch(`${node.adminUrl}/ui/`)).text();
    const css = /href="(\/ui\/vendor\/uplot@[^"]+\.css)"/.exec(html)?.[1];
    assert.ok(css);
    const res = await fetch(`${node.adminUrl}${css}`);
    assert.equal(res.headers.get('content-type'), 'text/css; charset=utf-8');
    await res.arrayBuffer();
    assert.equal((await fetch(`${node.adminUrl}/ui/vendor/preact@0.0.1/preact.mjs`)).status, 404);
    assert.equal((await fetch(`${node.adminUrl}/ui/../token`)).status, 404);
  });

  test('dashboard — data endpoints answer 401 without a session', async () => {
    for (const path of ['/ui/api/series', '/ui/api/session']) {
      const res = await fetch(`${node.adminUrl}${path}`);
      assert.equal(res.status, 401, path);
      assert.equal((await errorOf(res)).code, 'LL_UNAUTHORIZED');
    }
    const forged = await fetch(`${node.adminUrl}/v1/apps`, { headers: { cookie: 'll_session=made-up' } });
    assert.equal(forged.status, 401);
    await forged.arrayBuffer();
  });

  test('dashboard — a wrong token is refused with a message and no cookie', async () => {
    const res = await login('wrong');
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('set-cookie'), null);
    assert.match((await errorOf(res)).message, /Wrong admin token/);
    const noHeader = await login(node.platform.token, {});
    assert.equal(noHeader.status, 401, 'a login without the dashboard header is refused');
    assert.equal(noHeader.headers.get('set-cookie'), null);
    await noHeader.arrayBuffer();
  });

  test('dashboard — the token buys a session cookie holding a random id, not the token', async () => {
    const res = await login(node.platform.token);
    assert.equal(res.status, 200);
    const setCookie = res.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /^ll_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=\d+$/);
    assert.ok(!setCookie.includes(node.platform.token));
    cookie = setCookie.split(';')[0]!;
    const { node: name, secret } = (await res.json()) as { node: string; secret: string };
    assert.equal(name, node.platform.nodeName);
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    session = { cookie, 'x-lamplighter-dashboard': secret };
    const check = await fetch(`${node.adminUrl}/ui/api/session`, { headers: session });
    assert.deepEqual(await check.json(), { node: node.platform.nodeName });
    const apps = await fetch(`${node.adminUrl}/v1/apps`, { headers: session });
    assert.equal(apps.status, 200);
    await apps.arrayBuffer();
  });

  test('dashboard — the bearer token opens the data as it opens /v1; a login body past 4 KiB is refused with 413', async () => {
    const bearer = await fetch(`${node.adminUrl}/ui/api/session`, { headers: { authorization: `Bearer ${node.platform.token}` } });
    assert.equal(bearer.status, 200);
    assert.deepEqual(await bearer.json(), { node: node.platform.nodeName });
    const wrong = await fetch(`${node.adminUrl}/ui/api/session`, { headers: { authorization: 'Bearer wrong' } });
    assert.equal(wrong.status, 401);
    await wrong.arrayBuffer();
    const big = await fetch(`${node.adminUrl}/ui/api/session`, { method: 'POST', headers: { 'content-type': 'application/json', ...LOGIN }, body: JSON.stringify({ token: 'x'.repeat(5000) }) });
    assert.equal(big.status, 413);
    assert.equal((await errorOf(big)).code, 'LL_BODY_TOO_LARGE');
  });

  test('dashboard — the cookie alone, as the gateway\'s port would see it, opens nothing', async () => {
    const variants: Array<Record<string, string>> = [{ cookie }, { cookie, 'x-lamplighter-dashboard': 'A'.repeat(43) }];
    for (const headers of variants) {
      for (const path of ['/v1/apps', '/ui/api/series', '/v1/logs/demo']) {
        const res = await fetch(`${node.adminUrl}${path}`, { headers });
        assert.equal(res.status, 401, path);
        assert.match((await errorOf(res)).message, /secret/);
      }
    }
  });

  test('dashboard — series count requests per function, each second', async () => {
    const series = async (): Promise<{ functions: Record<string, { totalRequests: number; samples: Array<{ rate: number; p50Ms: number | null }> }> }> =>
      (await fetch(`${node.adminUrl}/ui/api/series`, { headers: session })).json() as never;
    await series();
    for (let i = 0; i < 4; i++) await (await fetch(`${node.url}/web`)).arrayBuffer();
    const deadline = Date.now() + 5000;
    let web = (await series()).functions.web;
    while (Date.now() < deadline && !(web && web.samples.some((s) => s.rate > 0))) {
      await new Promise((r) => setTimeout(r, 200));
      web = (await series()).functions.web;
    }
    assert.ok(web, 'the function has a series');
    assert.equal(web.totalRequests, 4);
    const busy = web.samples.filter((s) => s.rate > 0);
    assert.ok(busy.length > 0, 'a sample saw the requests');
    assert.ok(busy.every((s) => s.p50Ms !== null && s.p50Ms > 0));
  });

  test('dashboard — a state change with the cookie needs the session secret and this origin', async () => {
    const rollback = (headers: Record<string, string>): Promise<Response> =>
      fetch(`${node.adminUrl}/v1/apps/demo/rollback`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ revision: 1 }) });
    const bare = await rollback({});
    assert.equal(bare.status, 401);
    assert.match((await errorOf(bare)).message, /x-lamplighter-dashboard/);
    const foreign = await rollback({ ...session, origin: 'http://evil.example' });
    assert.equal(foreign.status, 401);
    assert.match((await errorOf(foreign)).message, /another origin/);
    assert.equal(node.platform.list()[0]?.revision, 2, 'refused requests changed nothing');
    const same = await rollback({ ...session, origin: node.adminUrl });
    assert.equal(same.status, 200);
    assert.deepEqual(await same.json(), { app: 'demo', revision: 1 });
  });

  test('dashboard — logging out ends the session', async () => {
    const out = await fetch(`${node.adminUrl}/ui/api/session`, { method: 'DELETE', headers: { cookie } });
    assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
    await out.arrayBuffer();
    const after = await fetch(`${node.adminUrl}/ui/api/series`, { headers: session });
    assert.equal(after.status, 401);
    await after.arrayBuffer();
  });
});

describe('dashboard sessions', () => {
  test('sessions — end after the idle time, and after their lifetime however used', () => {
    let now = 0;
    const sessions = new SessionStore({ idleMs: 1000, lifetimeMs: 5000, now: () => now });
    const idle = sessions.create();
    const busy = sessions.create();
    now = 900;
    assert.equal(sessions.check(busy.id, busy.secret), 'live');
    now = 1500;
    assert.equal(sessions.check(idle.id, idle.secret), 'none', 'unused for more than the idle time');
    for (now = 1800; now <= 4800; now += 600) assert.equal(sessions.check(busy.id, busy.secret), 'live');
    now = 5100;
    assert.equal(sessions.check(busy.id, busy.secret), 'none', 'past its lifetime');
    assert.equal(sessions.check('made-up', busy.secret), 'none');
  });

  test('sessions — a live id with another session\'s secret is refused and not refreshed', () => {
    let now = 0;
    const sessions = new SessionStore({ idleMs: 1000, now: () => now });
    const a = sessions.create();
    const b = sessions.create();
    assert.equal(sessions.check(a.id, b.secret), 'wrong-secret');
    assert.equal(sessions.check(a.id, ''), 'wrong-secret');
    now = 800;
    assert.equal(sessions.check(a.id, 'x'), 'wrong-secret');
    now = 1500;
    assert.equal(sessions.check(a.id, a.secret), 'none', 'wrong secrets did not keep it alive');
  });

  test('sessions — past the cap, the least recently used one ends', () => {
    const sessions = new SessionStore({ maxSessions: 2 });
    const a = sessions.create();
    const b = sessions.create();
    assert.equal(sessions.check(a.id, a.secret), 'live');
    const c = sessions.create();
    assert.equal(sessions.size, 2);
    assert.equal(sessions.check(b.id, b.secret), 'none');
    assert.equal(sessions.check(a.id, a.secret), 'live');
    assert.equal(sessions.check(c.id, c.secret), 'live');
  });
});

describe('dashboard series', () => {
  test('quantile — interpolates inside the bucket the rank falls in', () => {
    const bounds = [0.01, 0.1, 1, Infinity];
    // 10 requests: 5 under 10 ms, 4 in (10 ms, 100 ms], 1 in (100 ms, 1 s].
    const cumulative = [5, 9, 10, 10];
    assert.equal(quantile({ bounds, cumulative }, 0.5), 0.01);
    assert.ok(Math.abs(quantile({ bounds, cumulative }, 0.7) - 0.055) < 1e-9);
    assert.ok(Math.abs(quantile({ bounds, cumulative }, 0.99) - 0.91) < 1e-9);
    assert.equal(quantile({ bounds, cumulative: [0, 0, 0, 3] }, 0.5), 1, 'past the last bound it is that bound');
  });

  test('sampler — rate, errors and latency come from the gateway\'s request series, and reading makes no series of a function that answered nothing', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const figures = (name: string) => ({ name, instances: 1, inFlight: 0, pending: 0 });
    const sampler = new SeriesSampler({ metrics, list: () => [{ functions: [figures('busy'), figures('idle')] }] }, { intervalMs: 20 });
    try {
      const waitFor = async (what: string, ok: () => boolean): Promise<void> => {
        for (let i = 0; i < 200 && !ok(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
        assert.ok(ok(), `${what} within 2 s`);
      };
      await waitFor('the baseline', () => sampler.read().busy !== undefined);
      const series = metrics.requestSeries('busy');
      for (let i = 0; i < 8; i++) series.record(200, 0.002);
      for (let i = 0; i < 2; i++) series.record(503, 0.2);
      const sampled = () => sampler.read().busy?.samples.find((sample) => sample.rate > 0);
      await waitFor('a sample with the requests', () => sampled() !== undefined);
      const sample = sampled()!;
      assert.equal(sampler.read().busy?.totalRequests, 10);
      assert.ok(Math.abs(sample.errors / sample.rate - 0.2) < 1e-9, `2 of 10 answers were 5xx: errors ${sample.errors}/s at ${sample.rate}/s`);
      assert.ok(sample.p50Ms !== null && sample.p50Ms <= 2.5, `p50 ${sample.p50Ms} ms`);
      assert.ok(sample.p99Ms !== null && sample.p99Ms > 100 && sample.p99Ms <= 250, `p99 ${sample.p99Ms} ms`);
      assert.ok(Math.abs((sample.meanMs ?? 0) - 41.6) < 1e-6, `mean ${sample.meanMs} ms`);
      assert.equal(sampler.read().idle?.totalRequests, 0);
      assert.doesNotMatch(await metrics.render(), /function="idle"/, 'the sampler made no series for it');
    } finally {
      sampler.close();
    }
  });
});
