// Route table: host (exact, `*.` wildcard, or any) then path (exact, or longest `/...` prefix).
//
// Lookup walks the request path from its longest prefix to its shortest, one map probe per
// segment, so its cost grows with path depth, not with the number of routes.
import type { MatchedRoute } from '../instance/index.js';

/** One route as deployed. */
export interface RouteEntry<T> {
  /** As written in the manifest: `/hello`, `/hello/...` or `/...`. */
  pattern: string;
  /** Host patterns: `*`, `example.com`, `*.example.com`. */
  hosts: readonly string[];
  target: T;
}

/** A route found for a request. */
export interface RouteMatch<T> {
  target: T;
  route: MatchedRoute;
}

interface PathTable<T> {
  exact: Map<string, RouteEntry<T>>;
  prefix: Map<string, RouteEntry<T>>;
}

function newTable<T>(): PathTable<T> {
  return { exact: new Map(), prefix: new Map() };
}

/** Splits a route pattern into its kind and path. */
export function parseRoutePattern(pattern: string): { kind: 'exact' | 'prefix'; path: string } {
  if (pattern === '/...') return { kind: 'prefix', path: '' };
  if (pattern.endsWith('/...')) return { kind: 'prefix', path: pattern.slice(0, -4) };
  return { kind: 'exact', path: pattern.length > 1 && pattern.endsWith('/') ? pattern.slice(0, -1) : pattern };
}

/** An immutable route table; a deploy builds a new one and swaps it in whole. */
export class RouteTable<T> {
  private readonly byHost = new Map<string, PathTable<T>>();
  private readonly byWildcard = new Map<string, PathTable<T>>();
  private readonly any = newTable<T>();
  private readonly hasHostRoutes: boolean;

  /** Builds the table; throws naming both routes when two claim the same host and path. */
  constructor(entries: ReadonlyArray<RouteEntry<T>>, describe: (target: T) => string = String) {
    for (const entry of entries) {
      const { kind, path } = parseRoutePattern(entry.pattern);
      for (const host of entry.hosts) {
        const table = this.tableFor(host.toLowerCase());
        const map = kind === 'exact' ? table.exact : table.prefix;
        const existing = map.get(path);
        if (existing) {
          throw new Error(`Route '${entry.pattern}' on host '${host}' of ${describe(entry.target)} is already taken by ${describe(existing.target)}`);
        }
        map.set(path, entry);
      }
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

function matchPath<T>(table: PathTable<T>, path: string): RouteMatch<T> | undefined {
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  const exact = table.exact.get(trimmed);
  if (exact) return { target: exact.target, route: { pattern: exact.pattern, scriptName: trimmed, pathInfo: '' } };
  if (table.prefix.size === 0) return undefined;
  let end = trimmed.length;
  for (;;) {
    const prefix = trimmed.slice(0, end);
    const entry = table.prefix.get(prefix === '/' ? '' : prefix);
    if (entry) return { target: entry.target, route: { pattern: entry.pattern, scriptName: prefix === '/' ? '' : prefix, pathInfo: path.slice(prefix === '/' ? 0 : prefix.length) } };
    if (end === 0) return undefined;
    end = trimmed.lastIndexOf('/', end - 1);
    if (end < 0) return undefined;
  }
}
