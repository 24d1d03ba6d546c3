// Route table: host (exact, `*.` wildcard, or any) then path, in Spin's forms and precedence:
//   1. an exact route (`/users/me`);
//   2. a route with named parameters and no wildcard (`/users/:id`), the one with literal
//      segments furthest left first;
//   3. a wildcard route (`/users/...`, `/files/*`, `/users/:id/...`), the longest first; at equal
//      length, literal segments before parameters.
//
// Literal routes are found with one map probe per path segment (exact, then prefixes from the
// longest), so their cost grows with path depth, not with the number of routes. Routes with
// parameters are few and are tried in precedence order only when a host table has any.
import type { MatchedRoute } from '../instance/index.js';
import { literalPath, parseRoute, type RoutePattern, type RouteSegment } from '../manifest/index.js';

/** One route as deployed. */
export interface RouteEntry<T> {
  /** As written in the manifest: `/hello`, `/hello/...`, `/users/:id`, `/files/*`. */
  pattern: string;
  /** Host patterns: `*`, `example.com`, `*.example.com`. */
  hosts: readonly string[];
  target: T;
  /** Send the path without the part the route matched (`strip_prefix`). @default false */
  stripPrefix?: boolean;
}

/** A route found for a request. */
export interface RouteMatch<T> {
  target: T;
  route: MatchedRoute;
}

interface ParamRoute<T> {
  route: RoutePattern;
  entry: RouteEntry<T>;
}

interface PathTable<T> {
  exact: Map<string, RouteEntry<T>>;
  prefix: Map<string, RouteEntry<T>>;
  /** Routes with parameters and no wildcard, in precedence order. */
  params: Array<ParamRoute<T>>;
  /** Wildcard routes with parameters, longest first, then in precedence order. */
  paramPrefixes: Array<ParamRoute<T>>;
  /** Shape of every route held, to refuse two that match the same paths. */
  shapes: Map<string, RouteEntry<T>>;
}

function newTable<T>(): PathTable<T> {
  return { exact: new Map(), prefix: new Map(), params: [], paramPrefixes: [], shapes: new Map() };
}

/** Literal segments before parameters, left to right: negative when `a` is the more specific. */
function bySpecificity(a: RoutePattern, b: RoutePattern): number {
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const la = typeof a.segments[i] === 'string';
    const lb = typeof b.segments[i] === 'string';
    if (la !== lb) return la ? -1 : 1;
  }
  return 0;
}

/** An immutable route table; a deploy builds a new one and swaps it in whole. */
export class RouteTable<T> {
  private readonly byHost = new Map<string, PathTable<T>>();
  private readonly byWildcard = new Map<string, PathTable<T>>();
  private readonly any = newTable<T>();
  private readonly hasHostRoutes: boolean;

  /** Builds the table; throws naming both routes when two match the same paths on one host. */
  constructor(entries: ReadonlyArray<RouteEntry<T>>, describe: (target: T) => string = String) {
    for (const entry of entries) {
      const route = parseRoute(entry.pattern);
      for (const host of entry.hosts) {
        const table = this.tableFor(host.toLowerCase());
        const existing = table.shapes.get(route.shape);
        if (existing) {
          const same = existing.pattern === entry.pattern ? '' : ` ('${existing.pattern}' matches the same paths)`;
          throw new Error(`Route '${entry.pattern}' on host '${host}' of ${describe(entry.target)} is already taken by ${describe(existing.target)}${same}`);
        }
        table.shapes.set(route.shape, entry);
        if (route.hasParams) (route.wildcard ? table.paramPrefixes : table.params).push({ route, entry });
        else if (route.wildcard) table.prefix.set(literalPath(route), entry);
        else table.exact.set(literalPath(route) || '/', entry);
      }
    }
    for (const table of [this.any, ...this.byHost.values(), ...this.byWildcard.values()]) {
      table.params.sort((a, b) => bySpecificity(a.route, b.route));
      table.paramPrefixes.sort((a, b) => b.route.segments.length - a.route.segments.length || bySpecificity(a.route, b.route));
    }
    this.hasHostRoutes = this.byHost.size > 0 || this.byWildcard.size > 0;
  }

  private tableFor(host: string): PathTable<T> {
    if (host === '*') return this.any;
    const map = host.startsWith('*.') ? this.byWildcard : this.byHost;
    const key = host.startsWith('*.') ? host.slice(1) : host;
    let table = map.get(key);
    if (!table) {
      table = newTable();
      map.set(key, table);
    }
    return table;
  }

  /** Finds the route for a host (no port, any case) and a path (no query). */
  match(host: string, path: string): RouteMatch<T> | undefined {
    if (this.hasHostRoutes) {
      const h = host.toLowerCase();
      const exact = this.byHost.get(h);
      const found = exact && matchPath(exact, path);
      if (found) return found;
      // Most specific wildcard first: for a.b.example.com try .b.example.com, then .example.com.
      for (let dot = h.indexOf('.'); dot >= 0; dot = h.indexOf('.', dot + 1)) {
        const table = this.byWildcard.get(h.slice(dot));
        const hit = table && matchPath(table, path);
        if (hit) return hit;
      }
    }
    return matchPath(this.any, path);
  }
}

function matched<T>(entry: RouteEntry<T>, scriptName: string, pathInfo: string, params?: Record<string, string>): RouteMatch<T> {
  const route: MatchedRoute = { pattern: entry.pattern, scriptName, pathInfo, ...(params ? { params } : {}), ...(entry.stripPrefix ? { stripPrefix: true } : {}) };
  return { target: entry.target, route };
}

function matchPath<T>(table: PathTable<T>, path: string): RouteMatch<T> | undefined {
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  const exact = table.exact.get(trimmed);
  if (exact) return matched(exact, trimmed, '');
  const hasParams = table.params.length > 0 || table.paramPrefixes.length > 0;
  const segments = hasParams ? trimmed.split('/').slice(1) : undefined;
  if (segments) {
    for (const { route, entry } of table.params) {
      if (route.segments.length !== segments.length) continue;
      const params = bind(route.segments, segments);
      if (params) return matched(entry, trimmed, '', params);
    }
  }
  // The longest literal prefix, with its length in segments.
  let literal: { entry: RouteEntry<T>; prefix: string; depth: number } | undefined;
  if (table.prefix.size > 0) {
    let end = trimmed.length;
    for (;;) {
      const prefix = trimmed.slice(0, end);
      const key = prefix === '/' ? '' : prefix;
      const entry = table.prefix.get(key);
      if (entry) {
        // Without wildcard routes with parameters to weigh it against, the longest literal prefix wins.
        if (table.paramPrefixes.length === 0) return matched(entry, key, path.slice(key.length));
        literal = { entry, prefix: key, depth: key === '' ? 0 : key.split('/').length - 1 };
        break;
      }
      if (end === 0) break;
      end = trimmed.lastIndexOf('/', end - 1);
      if (end < 0) break;
    }
  }
  if (segments) {
    for (const { route, entry } of table.paramPrefixes) {
      const depth = route.segments.length;
      // At equal length a literal route is at least as specific at every segment: it wins.
      if (literal && literal.depth >= depth) break;
      if (segments.length < depth) continue;
      const params = bind(route.segments, segments.slice(0, depth));
      if (!params) continue;
      const scriptName = `/${segments.slice(0, depth).join('/')}`;
      return matched(entry, scriptName, path.slice(scriptName.length), params);
    }
  }
  if (literal) return matched(literal.entry, literal.prefix, path.slice(literal.prefix.length));
  return undefined;
}

/** The parameters of `pattern` bound to `segments` (same length), or undefined when a literal differs. */
function bind(pattern: readonly RouteSegment[], segments: readonly string[]): Record<string, string> | undefined {
  let params: Record<string, string> | undefined;
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i]!;
    const got = segments[i]!;
    if (typeof want === 'string') {
      if (want !== got) return undefined;
    } else {
      // An empty segment ('//') names nothing.
      if (got === '') return undefined;
      (params ??= {})[want.param] = safeDecode(got);
    }
  }
  return params ?? {};
}

/** Control characters, which a parameter must not carry into a header or a CGI variable. */
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * A parameter as the client meant it (`%20` is a space). Left as sent when its escapes are not
 * UTF-8, or decode to control characters: `%0d%0a` must never become a line break in the header
 * a process reads, nor `%00` end a WAGI variable early.
 */
function safeDecode(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    const decoded = decodeURIComponent(segment);
    return CONTROL.test(decoded) ? segment : decoded;
  } catch {
    return segment;
  }
}
