// The dashboard's page and browser libraries: the page's own files from static/, and preact, htm and
// uPlot from their installed packages, served under URLs that carry their versions.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** A file the dashboard serves, with its headers. */
export interface StaticFile {
  body: Buffer;
  contentType: string;
  cacheControl: string;
  etag: string;
}

/** The browser libraries the page loads, each file named under /ui/vendor/<package>@<version>/. */
const VENDOR_FILES: ReadonlyArray<{ pkg: string; file: string; as: string }> = [
  { pkg: 'preact', file: 'dist/preact.mjs', as: 'preact.mjs' },
  { pkg: 'htm', file: 'dist/htm.module.js', as: 'htm.mjs' },
  { pkg: 'uplot', file: 'dist/uPlot.esm.js', as: 'uplot.mjs' },
  { pkg: 'uplot', file: 'dist/uPlot.min.css', as: 'uplot.css' },
];

/** The page's own files in static/, by URL path under /ui/. */
const PAGE_FILES: ReadonlyArray<string> = ['app.js', 'app.css', 'favicon.svg'];

// Versioned URLs never change content; the page's own files change with Lamplighter, so they are revalidated.
const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

const here = path.dirname(fileURLToPath(import.meta.url));

/** static/ beside this module (a copied build), else in the source tree (dist/src/dashboard → src/dashboard). */
function staticDir(): string {
  const candidates = [path.join(here, 'static'), path.join(here, '..', '..', '..', 'src', 'dashboard', 'static')];
  return candidates.find((dir) => existsSync(path.join(dir, 'app.js'))) ?? candidates[0]!;
}

/** The root of installed package `name`: its entry point's nearest enclosing folder with a package.json naming it. */
function packageRoot(name: string): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve(name));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (parsed.name === name && parsed.version) return { dir, version: parsed.version };
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`Cannot find the package.json of '${name}' above ${require.resolve(name)}`);
    dir = parent;
  }
}

function contentTypeOf(file: string): string {
  if (file.endsWith('.js') || file.endsWith('.mjs')) return 'text/javascript; charset=utf-8';
  if (file.endsWith('.css')) return 'text/css; charset=utf-8';
  if (file.endsWith('.svg')) return 'image/svg+xml';
  return 'text/html; charset=utf-8';
}

function staticFile(body: Buffer, name: string, cacheControl: string): StaticFile {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, contentType: contentTypeOf(name), cacheControl, etag };
}

/** Every file of the dashboard by URL path (`/ui/...`), read once at first use. */
export class StaticFiles {
  #files: Map<string, StaticFile> | undefined;

  /** The file served at `pathname`, or undefined. */
  get(pathname: string): StaticFile | undefined {
    this.#files ??= this.#load();
    return this.#files.get(pathname === '/ui' ? '/ui/' : pathname);
  }

  #load(): Map<string, StaticFile> {
    const files = new Map<string, StaticFile>();
    const urls = new Map<string, string>();
    for (const { pkg, file, as } of VENDOR_FILES) {
      const root = packageRoot(pkg);
      const url = `/ui/vendor/${pkg}@${root.version}/${as}`;
      urls.set(as, url);
      files.set(url, staticFile(readFileSync(path.join(root.dir, file)), as, IMMUTABLE));
    }
    const dir = staticDir();
    for (const name of PAGE_FILES) files.set(`/ui/${name}`, staticFile(readFileSync(path.join(dir, name)), name, REVALIDATE));
    // The page imports the libraries through this module, so only it and the HTML know their versions.
    const vendor = [
      `export { h, render, Component, createRef } from '${urls.get('preact.mjs')}';`,
      `export { default as htm } from '${urls.get('htm.mjs')}';`,
      `export { default as uPlot } from '${urls.get('uplot.mjs')}';`,
      '',
    ].join('\n');
    files.set('/ui/vendor.js', staticFile(Buffer.from(vendor), 'vendor.js', REVALIDATE));
    const html = [
      '<!doctype html>',
      '<html lang="en">',
      '<head>',
      '<meta charset="utf-8">',
      '<meta name="viewport" content="width=device-width, initial-scale=1">',
      '<title>Lamplighter</title>',
      '<link rel="icon" href="/ui/favicon.svg" type="image/svg+xml">',
      `<link rel="stylesheet" href="${urls.get('uplot.css')}">`,
      '<link rel="stylesheet" href="/ui/app.css">',
      '<script type="module" src="/ui/app.js"></script>',
      '</head>',
      '<body><main id="app"><noscript>The Lamplighter dashboard needs JavaScript.</noscript></main></body>',
      '</html>',
      '',
    ].join('\n');
    files.set('/ui/', staticFile(Buffer.from(html), 'index.html', REVALIDATE));
    return files;
  }
}
