// The `lamplighter build` command: turns a JS or TS fetch handler into a wasi:http component.
import { STDIO, type CommandIo } from './command-io.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { buildComponent } from '../runtime/component/index.js';

/** Where the command writes. */
export type BuildIo = CommandIo;

const HELP = `
The handler is a module that either exports a fetch handler, as workerd does:

  export default {
    async fetch(request: Request, env: Record<string, string>): Promise<Response> {
      return new Response(\`hello \${env.GREETING ?? ''}\`);
    },
  };

or registers a fetch event listener:

  addEventListener('fetch', (event) => event.respondWith(new Response('hello')));

TypeScript is stripped and local and npm imports are bundled (esbuild), then the bundle is
embedded in a JavaScript engine component (componentize-js). The result exports
wasi:http/incoming-handler; deploy it with runtime = "component" in lamplighter.toml.
A build takes 10-20 s; the component is about 12 MiB.

--isolation instance builds for a function with isolation = "instance": one instance then
answers request after request and keeps its globals between them. Each request costs more
than in the default build, whose engine answers one request per instance (restored as new).`;

/** The output path for `entry` when -o is not given: the same name with `.wasm`, beside it. */
export function defaultOutput(entry: string): string {
  const parsed = path.parse(entry);
  return path.join(parsed.dir, `${parsed.name}.wasm`);
}

/** Registers `lamplighter build <handler> [-o handler.wasm] [--minify]`. */
export function registerBuildCommand(program: Command, io: BuildIo = STDIO): void {
  program
    .command('build')
    .argument('<handler>', 'JS or TS module with a fetch handler')
    .option('-o, --out <file>', 'component to write (default: <handler>.wasm beside the handler)')
    .option('--minify', 'minify the bundled JavaScript', false)
    .addOption(new Option('--isolation <isolation>', 'the isolation of the function it is built for').choices(['request', 'instance']).default('request'))
    .description('build a JS or TS fetch handler into a WebAssembly component (runtime = "component")')
    .addHelpText('after', HELP)
    .action(async (handler: string, opts: { out?: string; minify: boolean; isolation: 'request' | 'instance' }) => {
      const out = opts.out ?? defaultOutput(handler);
      const started = performance.now();
      const built = await buildComponent(handler, { minify: opts.minify, isolation: opts.isolation });
      await writeFile(out, built.component);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      io.out(`built ${out} (${(built.component.length / 1024 / 1024).toFixed(1)} MiB) from ${handler} in ${seconds} s`);
    });
}
