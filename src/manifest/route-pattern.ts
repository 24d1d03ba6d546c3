// Route patterns in Spin's forms: exact `/users/me`, named parameters `/users/:id`, and a trailing
// wildcard `/files/...` (or `/files/*`). Parsed once, when the manifest is read.

/** One segment of a route: literal text, or a named parameter that matches any one segment. */
export type RouteSegment = string | { readonly param: string };

/** A route as the gateway matches it. */
export interface RoutePattern {
  /** As written in the manifest. */
  readonly pattern: string;
  /** Segments before the wildcard (none for `/` and `/...`). */
  readonly segments: readonly RouteSegment[];
  /** Ends in `/...` or `/*`: matches any rest of the path. */
  readonly wildcard: boolean;
  /** Has a named parameter. */
  readonly hasParams: boolean;
  /** Routes with equal shapes match the same paths and cannot be deployed together. */
  readonly shape: string;
}

/** What a parameter may be named: it becomes a header (`spin-path-match-<name>`) and a CGI variable. */
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Parses a route; throws an Error saying what is wrong and what to write. */
export function parseRoute(pattern: string): RoutePattern {
  if (!pattern.startsWith('/')) throw new Error(`a route must start with '/', got '${pattern}'`);
  if (/[?#\s]/.test(pattern)) throw new Error(`a route holds no spaces, '?' or '#', got '${pattern}'`);
  let body = pattern;
  let wildcard = false;
  if (body === '/...' || body === '/*') {
    body = '';
    wildcard = true;
  } else if (body.endsWith('/...') || body.endsWith('/*')) {
    body = body.slice(0, body.lastIndexOf('/'));
    wildcard = true;
  } else if (body.length > 1 && body.endsWith('/')) {
    body = body.slice(0, -1);
  }
  const segments: RouteSegment[] = [];
  const names = new Set<string>();
  for (const text of body === '' || body === '/' ? [] : body.slice(1).split('/')) {
    if (text === '') throw new Error(`route '${pattern}' has an empty segment ('//')`);
    if (text === '...' || text === '*') throw new Error(`in route '${pattern}' a wildcard may only end the route, as '/files/...'`);
    if (text.startsWith(':')) {
      const name = text.slice(1);
      if (!PARAM_NAME.test(name)) throw new Error(`route '${pattern}' has parameter '${text}': name it with letters, digits, '_' or '-', like ':id'`);
      if (names.has(name.toLowerCase())) throw new Error(`route '${pattern}' names parameter ':${name}' twice`);
      names.add(name.toLowerCase());
      segments.push({ param: name });
    } else {
      segments.push(text);
    }
  }
  const shape = `${segments.map((s) => (typeof s === 'string' ? `/${s}` : '/:')).join('')}${wildcard ? '/...' : ''}` || '/';
  return { pattern, segments, wildcard, hasParams: names.size > 0, shape };
}

/** The literal path of a route without parameters, wildcard excluded: `/files` for `/files/...`, '' for `/...`. */
export function literalPath(route: RoutePattern): string {
  return route.segments.map((s) => `/${s as string}`).join('');
}
