// The route table: exact and prefix routes, longest match, hosts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RouteTable } from '../src/gateway/index.js';

const table = new RouteTable<string>([
  { pattern: '/...', hosts: ['*'], target: 'root' },
  { pattern: '/api/...', hosts: ['*'], target: 'api' },
  { pattern: '/api/v2/...', hosts: ['*'], target: 'api-v2' },
  { pattern: '/api/health', hosts: ['*'], target: 'health' },
  { pattern: '/shop', hosts: ['shop.test'], target: 'shop' },
  { pattern: '/...', hosts: ['*.tenant.test'], target: 'tenant' },
]);

describe('route table', () => {
  test('route table — longest prefix wins and splits SCRIPT_NAME / PATH_INFO', () => {
    assert.deepEqual(table.match('x', '/api/v2/users/7'), { target: 'api-v2', route: { pattern: '/api/v2/...', scriptName: '/api/v2', pathInfo: '/users/7' } });
    assert.deepEqual(table.match('x', '/api/v1'), { target: 'api', route: { pattern: '/api/...', scriptName: '/api', pathInfo: '/v1' } });
    assert.equal(table.match('x', '/api')?.target, 'api');
    assert.equal(table.match('x', '/apix')?.target, 'root');
    assert.deepEqual(table.match('x', '/'), { target: 'root', route: { pattern: '/...', scriptName: '', pathInfo: '/' } });
  });

  test('route table — an exact route beats a prefix, with or without a trailing slash', () => {
    assert.equal(table.match('x', '/api/health')?.target, 'health');
    assert.equal(table.match('x', '/api/health/')?.target, 'health');
    assert.equal(table.match('x', '/api/health/deep')?.target, 'api');
  });

  test('route table — host routes first, then wildcards, then any host', () => {
    assert.equal(table.match('shop.test', '/shop')?.target, 'shop');
    assert.equal(table.match('SHOP.test', '/shop')?.target, 'shop');
    assert.equal(table.match('shop.test', '/other')?.target, 'root');
    assert.equal(table.match('a.tenant.test', '/anything')?.target, 'tenant');
    assert.equal(table.match('a.b.tenant.test', '/anything')?.target, 'tenant');
    assert.equal(table.match('tenant.test', '/anything')?.target, 'root');
  });

  test('route table — no match without a catch-all', () => {
    const t = new RouteTable<string>([{ pattern: '/only', hosts: ['*'], target: 'only' }]);
    assert.equal(t.match('x', '/'), undefined);
    assert.equal(t.match('x', '/only/more'), undefined);
  });

  test('route table — two routes on the same host and path are refused', () => {
    assert.throws(
      () => new RouteTable<string>([{ pattern: '/a/...', hosts: ['*'], target: 'one' }, { pattern: '/a/...', hosts: ['*'], target: 'two' }]),
      /'\/a\/\.\.\.' on host '\*' of two is already taken by one/,
    );
  });
});
