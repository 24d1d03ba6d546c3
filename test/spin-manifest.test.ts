// Spin manifests (version 2) run as they are: a WAGI module and a wasi:http component built in
// this repo, behind routes, variables and environment written in Spin's documented format; what
// Lamplighter cannot provide is refused by name.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadManifest, parseManifest, translateSpinManifest } from '../src/manifest/index.js';
import { startTestNode, wagiFixture, type TestNode } from '../src/testing/index.js';
import { buildFixtureComponent } from './component-helpers.js';

const SPIN_APP = `spin_manifest_version = 2

[application]
name = "Spin_Hello"
version = "1.2.0"
authors = ["Someone <someone@example.com>"]
description = "A Spin app with a WAGI module and a component"

[variables]
greeting = { default = "hello" }
password = { required = true, secret = true }

[[trigger.http]]
route = "/wagi/..."
component = "wagi-env"
executor = { type = "wagi", argv = "\${SCRIPT_NAME} --verbose \${ARGS}" }

[[trigger.http]]
route = "/users/:id"
component = "wagi-env"
executor = { type = "wagi" }

[[trigger.http]]
route = "/env"
component = "echo"

[[trigger.http]]
route = "/site"
component = "site"
executor = { type = "wagi" }

[component.site]
source = "files.wasm"
files = ["static/**"]
exclude_files = ["**/*.bak"]

[component.wagi-env]
source = "env.wasm"
files = [{ source = "page.txt", destination = "/page.txt" }]
environment = { GREETING = "{{ greeting }}", PLAIN = "yes" }
[component.wagi-env.build]
command = "make env.wasm"
watch = ["env.c"]

[component.echo]
source = "echo.wasm"
allowed_outbound_hosts = ["https://api.example.com", "http://localhost:3000"]
environment = { PASSWORD = "{{ password }}" }
`;

function refused(text: string): string {
  try {
    translateSpinManifest(text);
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('the Spin manifest was accepted');
}

const header = 'spin_manifest_version = 2\n[application]\nname = "a"\n';

describe('spin manifests', () => {
  test('spin manifest — translates to the lamplighter.toml it means', () => {
    const manifest = parseManifest(translateSpinManifest(SPIN_APP));
    assert.equal(manifest.name, 'spin-hello', "Spin's name made a Lamplighter name");
    assert.equal(manifest.version, '1.2.0');
    assert.deepEqual(manifest.variables, { greeting: { default: 'hello', required: false, secret: false }, password: { default: undefined, required: true, secret: true } });
    const [wagi, echo] = manifest.functions;
    assert.equal(wagi!.name, 'wagi-env');
    assert.equal(wagi!.runtime, 'wagi');
    assert.deepEqual(wagi!.routes, ['/wagi/...', '/users/:id'], 'every trigger of a component is one of its routes');
    assert.deepEqual(wagi!.argv, ['--verbose']);
    assert.deepEqual(wagi!.env, { GREETING: '{{ greeting }}', PLAIN: 'yes' });
    assert.equal(wagi!.build, 'make env.wasm', "Spin's build command is up --watch's");
    assert.deepEqual(wagi!.files, [{ source: 'page.txt', destination: '/page.txt' }], "Spin's files are shipped as they are");
    assert.equal(echo!.runtime, 'component');
    assert.deepEqual(echo!.allowedOutboundHosts, ['https://api.example.com', 'http://localhost:3000']);
  });

  test('spin manifest — files and exclude_files map to the function, for WAGI modules and components alike', () => {
    const text =
      `${header}[[trigger.http]]\nroute = "/site/..."\ncomponent = "site"\n[[trigger.http]]\nroute = "/w"\ncomponent = "w"\nexecutor = { type = "wagi" }\n` +
      `[component.site]\nsource = "site.wasm"\nfiles = ["static/**", { source = "assets", destination = "/assets" }]\nexclude_files = ["**/*.bak", "static/drafts/**"]\n` +
      `[component.w]\nsource = "w.wasm"\nfiles = ["static/**"]\nexclude_files = []\n`;
    const [site, wagi] = parseManifest(translateSpinManifest(text)).functions;
    assert.equal(site!.runtime, 'component');
    const exclude = ['**/*.bak', 'static/drafts/**'];
    assert.deepEqual(site!.files, [{ pattern: 'static/**', exclude }, { source: 'assets', destination: '/assets', exclude }], 'exclude_files applies to every files entry');
    assert.deepEqual(wagi!.files, [{ pattern: 'static/**' }], 'an empty exclude_files is nothing to exclude');
    assert.match(translateSpinManifest(text), /exclude_files = \[ "\*\*\/\*\.bak", "static\/drafts\/\*\*" \]/);
  });

  test('spin manifest — Spin 2\'s application base path prefixes every route', () => {
    const text = `${header}[application.trigger.http]\nbase = "/api"\n[[trigger.http]]\nroute = "/users/..."\ncomponent = "c"\n[component.c]\nsource = "c.wasm"\n`;
    assert.deepEqual(parseManifest(translateSpinManifest(text)).functions[0]!.routes, ['/api/users/...']);
  });

  test('spin manifest — what Lamplighter cannot provide is refused by name, all at once', () => {
    const message = refused(
      `${header}[application.trigger.redis]\naddress = "redis://localhost"\n` +
        `[[trigger.http]]\nroute = "/kv"\ncomponent = "kv"\n[[trigger.redis]]\nchannel = "x"\ncomponent = "kv"\n` +
        `[component.kv]\nsource = { url = "https://example.com/kv.wasm", digest = "sha256:00" }\nkey_value_stores = ["default"]\nsqlite_databases = ["default"]\nallowed_outbound_hosts = ["redis://cache:6379"]\n`,
    );
    assert.match(message, /^Cannot run Spin manifest spin\.toml on Lamplighter: /);
    assert.match(message, /application\.trigger\.redis: redis triggers are not supported; Lamplighter serves HTTP triggers only/);
    assert.match(message, /trigger\.redis: redis triggers are not supported/);
    assert.match(message, /component\.kv\.key_value_stores: Lamplighter has no key-value store interface/);
    assert.match(message, /component\.kv\.sqlite_databases: Lamplighter has no SQLite interface/);
    assert.match(message, /component\.kv\.source: remote sources \(\{ url, digest \}\) are not fetched: download the file and set source to its path/);
    assert.match(message, /"redis:\/\/cache:6379": Lamplighter makes outbound HTTP requests only/);
  });

  test('spin manifest — executors, private routes, unknown fields and version 1 are refused with what to do', () => {
    assert.match(refused(`${header}[[trigger.http]]\nroute = { private = true }\ncomponent = "c"\n[component.c]\nsource = "c.wasm"\n`), /private routes .* are not supported/);
    assert.match(refused(`${header}[[trigger.http]]\nroute = "/"\ncomponent = "c"\nexecutor = { type = "wagi", entrypoint = "main" }\n[component.c]\nsource = "c.wasm"\n`), /entrypoint "main" is not supported: Lamplighter runs WAGI modules from _start/);
    assert.match(refused(`${header}[[trigger.http]]\nroute = "/"\ncomponent = "c"\nexecutor = { type = "wagi", argv = "\${ARGS}" }\n[component.c]\nsource = "c.wasm"\n`), /argv must read "\$\{SCRIPT_NAME\} … \$\{ARGS\}"/);
    assert.match(refused(`${header}[[trigger.http]]\nroute = "/"\ncomponent = "c"\n[component.c]\nsource = "c.wasm"\nvariables = { token = "{{ token }}" }\n`), /component variables need Spin's variables interface; pass values through environment/);
    assert.match(refused(`${header}[[trigger.http]]\nroute = "/"\ncomponent = "missing"\n`), /trigger\.http\[0\]\.component: no \[component\.missing\] in the manifest/);
    assert.match(refused(`${header}[[trigger.http]]\nroute = "/"\ncomponent = "c"\n[component.c]\nsource = "c.wasm"\nsomething_new = 1\n`), /component\.c\.something_new: not supported/);
    assert.match(refused('spin_manifest_version = "1"\nname = "old"\n'), /is a Spin manifest of version "1"; Lamplighter reads version 2/);
  });
});

describe('spin apps on a node', () => {
  let node: TestNode;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-spin-'));
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'spin.toml'), SPIN_APP);
    await copyFile(wagiFixture('env'), path.join(dir, 'env.wasm'));
    await writeFile(path.join(dir, 'page.txt'), 'a page\n');
    await copyFile(wagiFixture('files'), path.join(dir, 'files.wasm'));
    await mkdir(path.join(dir, 'static'));
    await writeFile(path.join(dir, 'static', 'page.txt'), 'a shipped page\n');
    await writeFile(path.join(dir, 'static', 'page.txt.bak'), 'an old copy, never shipped\n');
    await writeFile(path.join(dir, 'echo.wasm'), await buildFixtureComponent('echo.ts'));
    process.env.LAMPLIGHTER_VAR_PASSWORD = 'from the environment';
    node = await startTestNode();
  });
  after(async () => {
    delete process.env.LAMPLIGHTER_VAR_PASSWORD;
    await node?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('spin apps on a node — a directory holding only spin.toml deploys and serves both components', async () => {
    const { manifest } = await loadManifest(dir);
    assert.equal(manifest.name, 'spin-hello');
    const { revision } = await node.platform.deployDir(dir);
    assert.equal(revision.app, 'spin-hello');
    const wagi = await (await fetch(`${node.url}/wagi/page?a=1`)).text();
    assert.match(wagi, /^ENV GREETING=hello$/m, 'the variable default reached the environment');
    assert.match(wagi, /^ENV PLAIN=yes$/m);
    assert.match(wagi, /^ARG 1=--verbose$/m, 'argv between ${SCRIPT_NAME} and ${ARGS}');
    assert.match(wagi, /^ARG 2=a=1$/m, 'then the query arguments');
    const user = await (await fetch(`${node.url}/users/42`)).text();
    assert.match(user, /^ENV X_PARAM_ID=42$/m);
    const env = (await (await fetch(`${node.url}/env`)).json()) as Record<string, string>;
    assert.equal(env.PASSWORD, 'from the environment', 'a required variable from LAMPLIGHTER_VAR_PASSWORD');
    const page = await (await fetch(`${node.url}/site?cat=/static/page.txt`)).text();
    assert.equal(page, 'a shipped page\n');
    assert.equal(await (await fetch(`${node.url}/site?cat=/static/page.txt.bak`)).text(), 'error ENOENT\n', 'exclude_files left it out');
    assert.deepEqual(Object.keys(revision.artifacts).filter((name) => name.startsWith('static/')), ['static/page.txt'], 'and it was never uploaded');
    // The node stored the translation, never the Spin text.
    const stored = await node.platform.store.revisions('spin-hello');
    assert.match(stored[0]!.manifest, /^# Translated from the Spin manifest .*spin\.toml$/m);
  });
});
