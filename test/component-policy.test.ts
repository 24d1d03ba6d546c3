// Unit tests of the component runtime's pure parts: the outbound allow-list and reading a world's WIT.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { handlerExportOf, isOutboundAllowed, parseOutboundRules, parseWorld, unsupportedImports } from '../src/runtime/component/index.js';

function allowed(entries: string[], url: string): boolean {
  return isOutboundAllowed(parseOutboundRules(entries), new URL(url));
}

describe('outbound allow-list', () => {
  test('outbound allow-list — an empty list denies everything', () => {
    assert.equal(allowed([], 'http://127.0.0.1:8080/'), false);
    assert.equal(allowed([], 'https://example.com/'), false);
  });

  test('outbound allow-list — an exact entry allows its scheme, host and port only', () => {
    const entries = ['http://127.0.0.1:8080'];
    assert.equal(allowed(entries, 'http://127.0.0.1:8080/a?b=1'), true);
    assert.equal(allowed(entries, 'https://127.0.0.1:8080/'), false);
    assert.equal(allowed(entries, 'http://127.0.0.1:8081/'), false);
    assert.equal(allowed(entries, 'http://127.0.0.2:8080/'), false);
  });

  test('outbound allow-list — an entry without a port means the default port of its scheme', () => {
    assert.equal(allowed(['https://api.example.com'], 'https://api.example.com/v1'), true);
    assert.equal(allowed(['https://api.example.com'], 'https://api.example.com:8443/v1'), false);
    assert.equal(allowed(['*://api.example.com'], 'http://api.example.com/'), true);
    assert.equal(allowed(['*://api.example.com'], 'http://api.example.com:443/'), false);
  });

  test('outbound allow-list — wildcards for scheme, subdomains, hosts and ports', () => {
    assert.equal(allowed(['https://*.example.com'], 'https://a.b.example.com/'), true);
    assert.equal(allowed(['https://*.example.com'], 'https://example.com/'), false);
    assert.equal(allowed(['https://*.example.com'], 'https://badexample.com/'), false);
    assert.equal(allowed(['http://localhost:*'], 'http://localhost:3000/'), true);
    assert.equal(allowed(['*://*:*'], 'https://anything.test:1/'), true);
    assert.equal(allowed(['http://[::1]:8080'], 'http://[::1]:8080/'), true);
  });

  test('outbound allow-list — schemes other than http and https are never allowed', () => {
    assert.equal(allowed(['*://*:*'], 'ftp://example.com/'), false);
  });

  test('outbound allow-list — malformed entries are rejected with the entry in the message', () => {
    for (const bad of ['example.com', 'ftp://example.com', 'http://example.com/path', 'http://exa mple.com', 'http://example.com:99999']) {
      assert.throws(() => parseOutboundRules([bad]), (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.ok(err.message.includes(`'${bad}'`), err.message);
        return true;
      });
    }
  });
});

describe('component world', () => {
  const wit = `package root:component;

world root {
  import wasi:io/poll@0.2.12;
  import wasi:http/types@0.2.10;
  import acme:kv/store@1.0.0;
  import wasi:cli/environment@0.3.0;
  import log: func(msg: string);

  export wasi:http/incoming-handler@0.2.10;
  export run: func();
}
`;

  test('component world — reads top-level imports and exports, interfaces and functions', () => {
    assert.deepEqual(parseWorld(wit), {
      imports: ['wasi:io/poll@0.2.12', 'wasi:http/types@0.2.10', 'acme:kv/store@1.0.0', 'wasi:cli/environment@0.3.0', 'log'],
      exports: ['wasi:http/incoming-handler@0.2.10', 'run'],
    });
  });

  test('component world — unknown interfaces, other WASI versions and bare functions are unsupported', () => {
    assert.deepEqual(unsupportedImports(parseWorld(wit).imports), ['acme:kv/store@1.0.0', 'wasi:cli/environment@0.3.0', 'log']);
  });

  test('component world — finds a 0.2.x incoming-handler export', () => {
    assert.equal(handlerExportOf(['run', 'wasi:http/incoming-handler@0.2.10']), 'wasi:http/incoming-handler@0.2.10');
    assert.equal(handlerExportOf(['wasi:http/incoming-handler@0.3.0']), undefined);
  });
});
