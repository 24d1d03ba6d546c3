// The handler source beside a component's artifact: the file `up --watch` builds is the one a missing artifact's hint names.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { handlerSourceBeside } from '../src/config/index.js';
import { readArtifact } from '../src/manifest/index.js';
import { spec } from './dispatch-helpers.js';

describe('handler source', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-handler-'));
    await mkdir(path.join(dir, 'api'));
    for (const file of ['api/handler.mts', 'api/handler.js', 'lone.mts']) await writeFile(path.join(dir, file), 'export default {};\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('handler source — the first of .ts, .js, .mjs, .mts beside the artifact, relative as the source is', async () => {
    assert.equal(await handlerSourceBeside(dir, 'api/handler.wasm'), path.join('api', 'handler.js'));
    assert.equal(await handlerSourceBeside(dir, 'lone.wasm'), 'lone.mts');
    assert.equal(await handlerSourceBeside(dir, 'none.wasm'), undefined);
  });

  test('handler source — the one `up --watch` builds is the one a missing artifact\'s hint names (regression: two lists in two orders)', async () => {
    const source = 'api/handler.wasm';
    const fn = spec({}, {}, { runtime: 'component', source, command: undefined });
    await assert.rejects(readArtifact(dir, fn), (err: Error) => {
      assert.match(err.message, new RegExp(`lamplighter build ${path.join('api', 'handler.js').replace('.', '\\.')} -o`));
      return true;
    });
    assert.equal(await handlerSourceBeside(dir, source), path.join('api', 'handler.js'));
  });
});
