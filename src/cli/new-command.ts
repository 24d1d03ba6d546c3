// The `lamplighter new` command: scaffolds an app directory with a manifest and a handler to start from.
import { STDIO, type CommandIo } from './command-io.js';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { ManifestError } from '../errors/index.js';

/** The templates `lamplighter new` knows. */
export const APP_TEMPLATES = ['wagi-c', 'js', 'ts'] as const;

/** One of {@link APP_TEMPLATES}. */
export type AppTemplate = (typeof APP_TEMPLATES)[number];

/** Where the command writes. */
export type NewIo = CommandIo;

const APP_NAME = /^[a-z][a-z0-9-]{0,62}$/;

function manifest(name: string, runtime: 'wagi' | 'component', source: string, comment: string): string {
  return `# ${comment}
name = "${name}"

[[function]]
name = "${name}"
runtime = "${runtime}"
source = "${source}"
routes = ["/..."]
# Hosts this function may call; none by default. Entries are scheme://host:port, * allowed.
allowed_outbound_hosts = []

[function.limits]
memory = "64MiB"
timeout = "10s"

[function.scale]
min = 0
max = 10
idle = "30s"

[function.env]
GREETING = "Hello"
`;
}

const JS_HANDLER = `// A Lamplighter fetch handler: build it with \`lamplighter build handler.js\`.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const greeting = env.GREETING ?? 'Hello';
    return new Response(\`\${greeting} from Lamplighter! You asked for \${url.pathname}\\n\`, {
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  },
};
`;

const TS_HANDLER = `// A Lamplighter fetch handler: build it with \`lamplighter build handler.ts\`.
interface Env {
  GREETING?: string;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const greeting = env.GREETING ?? 'Hello';
    return new Response(\`\${greeting} from Lamplighter! You asked for \${url.pathname}\\n\`, {
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  },
};
`;

const C_HANDLER = `// A Lamplighter WAGI handler: the request arrives in environment variables and on stdin,
// the response (headers, blank line, body) goes to stdout.
// Build: clang --target=wasm32-wasi -O2 -o handler.wasm handler.c   (clang with wasi-libc)
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  const char *greeting = getenv("GREETING");
  const char *path = getenv("PATH_INFO");
  if (greeting == NULL || *greeting == '\\0') greeting = "Hello";
  printf("content-type: text/plain; charset=utf-8\\n\\n");
  printf("%s from Lamplighter! You asked for %s\\n", greeting, path ? path : "/");
  return 0;
}
`;

function readme(name: string, template: AppTemplate): string {
  const build =
    template === 'wagi-c'
      ? 'clang --target=wasm32-wasi -O2 -o handler.wasm handler.c'
      : `lamplighter build handler.${template}`;
  return `# ${name}

Build the handler, then serve the app:

    ${build}
    lamplighter up .

Edit \`lamplighter.toml\` for routes, limits, scaling, environment and outbound hosts.
`;
}

/** The files of a new app, by relative path. */
export function templateFiles(name: string, template: AppTemplate): Record<string, string> {
  switch (template) {
    case 'wagi-c':
      return {
        'lamplighter.toml': manifest(name, 'wagi', 'handler.wasm', 'A WAGI function written in C; handler.wasm is built from handler.c.'),
        'handler.c': C_HANDLER,
        'README.md': readme(name, template),
      };
    case 'js':
      return {
        'lamplighter.toml': manifest(name, 'component', 'handler.wasm', 'A JavaScript fetch handler; `lamplighter build handler.js` makes handler.wasm.'),
        'handler.js': JS_HANDLER,
        'README.md': readme(name, template),
      };
    case 'ts':
      return {
        'lamplighter.toml': manifest(name, 'component', 'handler.wasm', 'A TypeScript fetch handler; `lamplighter build handler.ts` makes handler.wasm.'),
        'handler.ts': TS_HANDLER,
        'README.md': readme(name, template),
      };
  }
}

/** Options for {@link createApp}. */
export interface CreateAppOptions {
  /** Which handler to start from. @default 'ts' */
  template?: AppTemplate;
  /** Directory the app directory is made in. @default process.cwd() */
  parent?: string;
}

/** Writes a new app directory `<parent>/<name>`; refuses a name that is not a valid app name or a directory that is not empty. */
export async function createApp(name: string, options: CreateAppOptions = {}): Promise<{ dir: string; files: string[] }> {
  if (!APP_NAME.test(name)) {
    throw new ManifestError(`Cannot create app '${name}': a name must be lower-case letters, digits and dashes, starting with a letter`);
  }
  const dir = path.resolve(options.parent ?? process.cwd(), name);
  const existing = await readdir(dir).catch(() => [] as string[]);
  if (existing.length > 0) throw new ManifestError(`Cannot create app '${name}': ${dir} exists and is not empty`);
  await mkdir(dir, { recursive: true });
  const files = templateFiles(name, options.template ?? 'ts');
  for (const [file, content] of Object.entries(files)) await writeFile(path.join(dir, file), content, { flag: 'wx' });
  return { dir, files: Object.keys(files) };
}

function parseTemplate(value: string): AppTemplate {
  if ((APP_TEMPLATES as readonly string[]).includes(value)) return value as AppTemplate;
  throw new InvalidArgumentError(`expected one of ${APP_TEMPLATES.join(', ')}`);
}

/** Registers `lamplighter new <name> [--template wagi-c|js|ts] [--dir <parent>]`. */
export function registerNewCommand(program: Command, io: NewIo = STDIO): void {
  program
    .command('new')
    .argument('<name>', 'app name; also the directory created')
    .option('-t, --template <template>', `handler to start from: ${APP_TEMPLATES.join(', ')}`, parseTemplate, 'ts' as AppTemplate)
    .option('--dir <parent>', 'directory to create the app in', '.')
    .description('create an app directory with a lamplighter.toml and a handler')
    .action(async (name: string, opts: { template: AppTemplate; dir: string }) => {
      const { dir, files } = await createApp(name, { template: opts.template, parent: opts.dir });
      io.out(`created ${dir}: ${files.join(', ')}`);
      const next = opts.template === 'wagi-c' ? 'build handler.wasm from handler.c (see README.md)' : `lamplighter build ${path.join(dir, `handler.${opts.template}`)}`;
      io.out(`next: ${next}, then lamplighter up ${dir}`);
    });
}
