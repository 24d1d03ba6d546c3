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

describe('route table — Spin forms', () => {
  const spin = new RouteTable<string>([
    { pattern: '/users/me', hosts: ['*'], target: 'me' },
    { pattern: '/users/:id', hosts: ['*'], target: 'user' },
    { pattern: '/users/:id/posts/:post', hosts: ['*'], target: 'post' },
    { pattern: '/:kind/:id', hosts: ['*'], target: 'kind' },
    { pattern: '/users/...', hosts: ['*'], target: 'users-rest' },
    { pattern: '/users/:id/...', hosts: ['*'], target: 'user-rest' },
    { pattern: '/users/admin/...', hosts: ['*'], target: 'admin-rest' },
    { pattern: '/files/*', hosts: ['*'], target: 'files' },
  ]);

  test('route table — exact beats a parameter, which beats a wildcard; literal segments first', () => {
    assert.equal(spin.match('x', '/users/me')?.target, 'me');
    assert.deepEqual(spin.match('x', '/users/7'), { target: 'user', route: { pattern: '/users/:id', scriptName: '/users/7', pathInfo: '', params: { id: '7' } } });
    assert.deepEqual(spin.match('x', '/teams/7')?.route.params, { kind: 'teams', id: '7' }, 'a literal first segment is tried before a parameter');
    assert.equal(spin.match('x', '/users/7/')?.target, 'user', 'a trailing slash is the same path');
    assert.deepEqual(spin.match('x', '/users/7/posts/9')?.route.params, { id: '7', post: '9' });
  });

  test('route table — among wildcards the longest wins, and at equal length a literal one', () => {
    assert.deepEqual(spin.match('x', '/users/7/photos/1'), { target: 'user-rest', route: { pattern: '/users/:id/...', scriptName: '/users/7', pathInfo: '/photos/1', params: { id: '7' } } });
    assert.equal(spin.match('x', '/users/admin/x')?.target, 'admin-rest', 'literal beats a parameter at equal length');
    assert.equal(spin.match('x', '/users')?.target, 'users-rest');
    assert.deepEqual(spin.match('x', '/files/a/b.txt'), { target: 'files', route: { pattern: '/files/*', scriptName: '/files', pathInfo: '/a/b.txt' } });
    assert.equal(spin.match('x', '/files')?.target, 'files');
  });

  test('route table — parameters are decoded, but never into control characters', () => {
    assert.deepEqual(spin.match('x', '/users/J%C3%BCrgen%20B')?.route.params, { id: 'Jürgen B' });
    assert.deepEqual(spin.match('x', '/users/a%0d%0aX-Evil:%201')?.route.params, { id: 'a%0d%0aX-Evil:%201' }, 'left as sent');
    assert.deepEqual(spin.match('x', '/users/%E0%A4%A')?.route.params, { id: '%E0%A4%A' }, 'a broken escape is left as sent');
    assert.equal(spin.match('x', '//7')?.target, undefined, 'an empty segment binds no parameter');
  });

  test('route table — two routes that match the same paths are refused, naming both', () => {
    assert.throws(
      () => new RouteTable<string>([{ pattern: '/users/:id', hosts: ['*'], target: 'a' }, { pattern: '/users/:name', hosts: ['*'], target: 'b' }]),
      /Route '\/users\/:name' on host '\*' of b is already taken by a \('\/users\/:id' matches the same paths\)/,
    );
    assert.throws(() => new RouteTable<string>([{ pattern: '/f/...', hosts: ['*'], target: 'a' }, { pattern: '/f/*', hosts: ['*'], target: 'b' }]), /already taken by a/);
    assert.doesNotThrow(() => new RouteTable<string>([{ pattern: '/u/:id', hosts: ['a.test'], target: 'a' }, { pattern: '/u/:name', hosts: ['b.test'], target: 'b' }]));
  });

  test('route table — strip_prefix is carried on the match', () => {
    const t = new RouteTable<string>([{ pattern: '/api/...', hosts: ['*'], target: 'api', stripPrefix: true }]);
    assert.equal(t.match('x', '/api/users')?.route.stripPrefix, true);
  });
});
