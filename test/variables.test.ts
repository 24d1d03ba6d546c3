// App variables: declared in [variables], used in env as {{ name }}, valued per node from its
// environment, a file, or a default; required ones refuse the deploy; secrets are never shown.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseManifest, renderEnvTemplate } from '../src/manifest/index.js';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

const SECRET = 's3cr3t-value-7f2c';

function envApp(app: string, variables: string, env: string): string {
  return `name = "${app}"\n\n[variables]\n${variables}\n\n[[function]]\nname = "${app}"\nsource = "env.wasm"\nroutes = ["/${app}"]\n[function.env]\n${env}\n`;
}

function manifestError(text: string): string {
  try {
    parseManifest(text);
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('the manifest was accepted');
}

describe('variables in the manifest', () => {
  test('variables — a reference to an undeclared variable is refused with where and how to declare it', () => {
    const message = manifestError(envApp('a', 'greeting = { default = "hi" }', 'GREETING = "{{ greting }}"'));
    assert.match(message, /function\[a\]\.env\.GREETING: uses variable 'greting', which \[variables\] does not declare; add greting = \{ default = "…" \} or \{ required = true \}/);
  });

  test('variables — malformed references, names and declarations are refused with what to write', () => {
    assert.match(manifestError(envApp('a', 'greeting = { default = "hi" }', 'G = "{{ greeting"')), /env\.G: '\{\{' at character 1 is never closed by '\}\}'/);
    assert.match(manifestError(envApp('a', 'greeting = { default = "hi" }', 'G = "{{ Greeting }}"')), /env\.G: \{\{ Greeting \}\} is not a variable name/);
    assert.match(manifestError(envApp('a', 'Greeting = { default = "hi" }', 'G = "x"')), /variable names must be lower-case letters, digits and underscores/);
    assert.match(manifestError(envApp('a', 'k = { default = "x", required = true }', 'G = "{{ k }}"')), /variables\.k: a variable is either required or has a default, not both/);
    assert.match(manifestError(envApp('a', 'k = { secret = true }', 'G = "{{ k }}"')), /variables\.k: a variable needs default = "…" or required = true/);
    assert.match(manifestError(envApp('a', 'k = { default = "x", secrt = true }', 'G = "{{ k }}"')), /unknown field 'secrt' \(did you mean 'secret'\?\)/);
  });

  test('variables — a template renders text and references in order', () => {
    const values = new Map([['a', 'A'], ['b_2', 'B']]);
    assert.equal(renderEnvTemplate('x{{a}}y{{ b_2 }}{{a}}', values), 'xAyBA');
    assert.equal(renderEnvTemplate('no references', values), 'no references');
    const manifest = parseManifest(envApp('a', 'key = { required = true, secret = true }', 'K = "Bearer {{ key }}"'));
    assert.deepEqual(manifest.variables, { key: { default: undefined, required: true, secret: true } });
    assert.equal(manifest.functions[0]!.env.K, 'Bearer {{ key }}', 'the spec keeps the template: values are per node');
  });
});

describe('variables on a node', () => {
  let node: TestNode;
  let work: string;
  let varsFile: string;
  const logged: string[] = [];

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'lamplighter-vars-'));
    varsFile = path.join(work, 'vars.toml');
    await writeFile(varsFile, `from_file = "file value"\napi_key = "${SECRET}"\n`);
    process.env.LAMPLIGHTER_VAR_FROM_ENV = 'env value';
    process.env.LAMPLIGHTER_VAR_BOTH = 'env wins';
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logged.push(chunk.toString()), done()) });
    node = await startTestNode({ variablesFile: varsFile, logger: pino({ level: 'debug' }, sink) });
  });
  after(async () => {
    delete process.env.LAMPLIGHTER_VAR_FROM_ENV;
    delete process.env.LAMPLIGHTER_VAR_BOTH;
    await node.close();
    await rm(work, { recursive: true, force: true });
  });

  test('variables on a node — values come from the environment, then the file, then the default', async () => {
    await node.deploy(
      envApp(
        'vars',
        ['from_env = { required = true }', 'from_file = { required = true }', 'both = { default = "default" }', 'fallback = { default = "the default" }', 'api_key = { required = true, secret = true }'].join('\n'),
        ['A = "{{ from_env }}"', 'B = "{{from_file}}!"', 'C = "{{ both }}"', 'D = "<{{ fallback }}>"', 'KEY = "Bearer {{ api_key }}"', 'PLAIN = "{{ not a ref"'.replace('{{ not a ref', 'plain')].join('\n'),
      ),
      { 'env.wasm': wagiFixture('env') },
    );
    const text = await (await fetch(`${node.url}/vars`)).text();
    assert.match(text, /^ENV A=env value$/m);
    assert.match(text, /^ENV B=file value!$/m);
    assert.match(text, /^ENV C=env wins$/m);
    assert.match(text, /^ENV D=<the default>$/m);
    assert.match(text, new RegExp(`^ENV KEY=Bearer ${SECRET}$`, 'm'), 'the function gets the secret');
    assert.match(text, /^ENV PLAIN=plain$/m);
  });

  test('variables on a node — a secret appears nowhere the platform shows', async () => {
    const auth = { headers: { authorization: `Bearer ${node.platform.token}` } };
    for (const route of ['/v1/apps', '/v1/functions/vars', '/v1/inspect', '/v1/apps/vars/revisions', '/v1/cluster']) {
      const body = await (await fetch(`${node.adminUrl}${route}`, auth)).text();
      assert.ok(!body.includes(SECRET), `${route} shows the secret`);
    }
    assert.ok(!(await (await fetch(`${node.adminUrl}/metrics`)).text()).includes(SECRET));
    assert.ok(logged.length > 0 && !logged.join('').includes(SECRET), 'the node log never holds it');
    const revisions = await node.platform.store.revisions('vars');
    assert.ok(!JSON.stringify(revisions).includes(SECRET), 'the store holds the template, not the value');
  });

  test('variables on a node — a required variable with no value refuses the deploy, naming it, and commits nothing', async () => {
    await assert.rejects(
      node.deploy(envApp('missing', 'region = { required = true }\ntoken = { required = true, secret = true }', 'R = "{{ region }}"\nT = "{{ token }}"'), { 'env.wasm': wagiFixture('env') }),
      (err: Error) => {
        assert.match(err.message, /Cannot deploy app 'missing': required variables 'region', 'token' have no value on this node; set environment variable LAMPLIGHTER_VAR_REGION, or 'region' in .*vars\.toml/);
        return true;
      },
    );
    assert.deepEqual(await node.platform.store.revisions('missing'), [], 'nothing committed');
    assert.equal((await fetch(`${node.url}/missing`)).status, 404);
  });

  test('variables on a node — a variables file that is not TOML is refused without quoting its lines', async () => {
    await writeFile(varsFile, `api_key = "${SECRET}\n`);
    await assert.rejects(node.deploy(envApp('broken', 'api_key = { required = true, secret = true }', 'K = "{{ api_key }}"'), { 'env.wasm': wagiFixture('env') }), (err: Error) => {
      assert.match(err.message, /The variables file .*vars\.toml is not valid TOML \(line 1\); write one name = "value" per line/);
      assert.ok(!err.message.includes(SECRET));
      return true;
    });
    await writeFile(varsFile, 'api_key = 7\n');
    await assert.rejects(node.deploy(envApp('broken', 'api_key = { required = true }', 'K = "{{ api_key }}"'), { 'env.wasm': wagiFixture('env') }), /gives 'api_key' a number; values are strings: api_key = "…"/);
    // The app deployed before keeps serving.
    assert.equal((await fetch(`${node.url}/vars`)).status, 200);
  });
});

test('variables — an unchanged wagiApp helper still deploys without [variables]', () => {
  assert.deepEqual(parseManifest(wagiApp('plain', 'plain', 'p.wasm', ['/p'])).variables, {});
});
