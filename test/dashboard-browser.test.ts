// The dashboard in a real browser (Debian's chromium, driven by playwright-core) against a real node.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestCluster, startTestNode, wagiFixture, type TestCluster, type TestNode } from '../src/testing/index.js';

const CHROMIUM = process.env.LAMPLIGHTER_CHROMIUM ?? '/usr/bin/chromium';

/** Bound on every wait for the page. */
const WAIT_MS = 8000;

/** One app, `demo`, whose function `web` answers "default" (revision 1) or echoes and logs (revision 2). */
function demoApp(fixture: string): string {
  return `name = "demo"\n\n[[function]]\nname = "web"\nsource = "${fixture}.wasm"\nroutes = ["/web", "/web/..."]\n`;
}

const skip = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}`;
let browser: Browser | undefined;

/** The one browser of this file, launched on first use. */
async function launched(): Promise<Browser> {
  // Root (as in CI containers) cannot use chromium's sandbox.
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [], timeout: 20_000 });
  return browser;
}

after(async () => {
  await browser?.close();
});

/** Opens the dashboard of the node at `adminUrl` and logs in with `token`. */
async function logIn(page: Page, adminUrl: string, token: string): Promise<void> {
  await page.goto(`${adminUrl}/ui`);
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#node-name');
}

describe('dashboard in a browser', { skip }, () => {
  let node: TestNode;
  let page: Page;
  let nodeClosed = false;
  const pageErrors: string[] = [];

  before(async () => {
    node = await startTestNode();
    await node.deploy(demoApp('output'), { 'output.wasm': wagiFixture('output') });
    await node.deploy(demoApp('echo'), { 'echo.wasm': wagiFixture('echo') });
    page = await (await launched()).newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      // Failed loads are judged by their answers below; anything else (a CSP refusal, a script error) is a fault.
      if (msg.type() === 'error' && !nodeClosed && !msg.text().startsWith('Failed to load resource')) pageErrors.push(msg.text());
    });
    page.on('response', (res) => {
      // 401 is the answer before login and to a wrong token; any other failure is a fault.
      const expected = res.status() === 401 && new URL(res.url()).pathname === '/ui/api/session';
      if (res.status() >= 400 && !expected) pageErrors.push(`${res.status()} ${res.url()}`);
    });
  });

  after(async () => {
    await page?.close();
    if (!nodeClosed) await node?.close();
  });

  test('dashboard — the page loads and a wrong token is refused with a message', async () => {
    await page.goto(`${node.adminUrl}/ui`);
    await page.fill('#token', 'not-the-token');
    await page.click('#login button[type=submit]');
    const message = await page.textContent('#login-error');
    assert.match(message ?? '', /Wrong admin token/);
    assert.deepEqual(await page.context().cookies(), []);
  });

  test('dashboard — the token opens a session cookie, and apps and functions appear', async () => {
    await page.fill('#token', node.platform.token);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#app-demo .current-revision');
    await page.waitForSelector('#fn-web');
    assert.equal(await page.textContent('#app-demo .current-revision'), '2');
    await page.waitForSelector('#app-demo tr[data-revision="1"] button.rollback');
    const [cookie, ...others] = await page.context().cookies();
    assert.equal(others.length, 0);
    assert.ok(cookie);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(cookie.path, '/');
    assert.notEqual(cookie.value, node.platform.token, 'the cookie holds a session id, not the token');
    assert.equal(await page.locator('#fn-web canvas').count() >= 3, true, 'three uPlot charts are drawn');
    assert.match((await page.textContent('#nodes')) ?? '', /single node/);
  });

  test('dashboard — requests to the gateway show up in the figures and the rate chart', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${node.url}/web`)).status, 200);
    await page.waitForFunction(() => Number(document.querySelector('#fn-web .fig-requests')?.textContent) >= 5, undefined, { timeout: WAIT_MS });
    await page.waitForFunction(() => Number(document.querySelector('#fn-web .chart[data-title="Requests per second"]')?.getAttribute('data-peak')) > 0, undefined, { timeout: WAIT_MS });
    await page.waitForFunction(() => Number(document.querySelector('#fn-web .fig-cold')?.textContent) >= 1, undefined, { timeout: WAIT_MS });
  });

  test('dashboard — the log tail shows a line the function writes', async () => {
    const mark = `mark-${Date.now()}`;
    assert.equal((await fetch(`${node.url}/web/${mark}`)).status, 200);
    await page.waitForFunction((m) => document.querySelector('#log-lines')?.textContent?.includes(m) === true, mark, { timeout: WAIT_MS });
  });

  test('dashboard — rollback from the page changes the served revision', async () => {
    await page.click('#app-demo tr[data-revision="1"] button.rollback');
    await page.waitForFunction(() => document.querySelector('#app-demo .current-revision')?.textContent === '1', undefined, { timeout: WAIT_MS });
    const body = await (await fetch(`${node.url}/web`)).text();
    assert.equal(body, 'default\n');
    assert.deepEqual(pageErrors, []);
  });

  test('dashboard — the page shows an error, not a blank page, when the node stops', async () => {
    nodeClosed = true;
    await node.close();
    const banner = await page.waitForSelector('#connection', { timeout: WAIT_MS });
    assert.match((await banner.textContent()) ?? '', /Lost contact with node/);
    assert.equal(await page.locator('#fn-web').count(), 1, 'what was shown stays on the page');
  });
});

describe('dashboard of a cluster node', { skip }, () => {
  let cluster: TestCluster;
  let page: Page;

  before(async () => {
    cluster = await startTestCluster({ nodes: 2 });
    page = await (await launched()).newPage();
    page.setDefaultTimeout(WAIT_MS);
  });
  after(async () => {
    await page?.close();
    await cluster?.close();
  });

  test('dashboard — in a cluster, the page lists every node with its health', async () => {
    const [a] = cluster.nodes;
    assert.ok(a);
    await logIn(page, a.adminUrl, a.platform.token);
    await page.waitForSelector('#nodes tr[data-node="node-b"]');
    const rows = await page.locator('#nodes tbody tr').evaluateAll((trs) => trs.map((tr) => tr.textContent ?? ''));
    assert.equal(rows.length, 2);
    assert.match(rows.find((r) => r.startsWith('node-a')) ?? '', /this node.*yes/);
    assert.match(rows.find((r) => r.startsWith('node-b')) ?? '', /yes/);
  });
});
