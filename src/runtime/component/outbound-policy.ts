// The outbound HTTP allow-list: `scheme://host:port` entries with `*` wildcards; everything else is denied.

/** One parsed allow-list entry. */
export interface OutboundRule {
  /** The entry as written. */
  readonly source: string;
  /** `http`, `https` or `*`. */
  readonly scheme: string;
  /** Lower-cased host: a name, an address, `*`, or `*.suffix`. */
  readonly host: string;
  /** A port, `*`, or undefined for the scheme's default port. */
  readonly port: number | '*' | undefined;
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = { http: 80, https: 443 };
const ENTRY = /^(\*|https?):\/\/(\*|\*\.[a-z0-9.-]+|[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\*|\d{1,5}))?\/?$/;

/** Parses allow-list entries; throws an Error naming the first malformed one. */
export function parseOutboundRules(entries: readonly string[]): OutboundRule[] {
  return entries.map((source) => {
    const match = ENTRY.exec(source.trim().toLowerCase());
    if (!match) {
      throw new Error(
        `allowed_outbound_hosts entry '${source}' is not of the form scheme://host[:port] (scheme http, https or *; host a name, an address, * or *.domain; port a number or *)`,
      );
    }
    const portText = match[3];
    const port = portText === undefined ? undefined : portText === '*' ? '*' : Number(portText);
    if (typeof port === 'number' && (port < 1 || port > 65_535)) {
      throw new Error(`allowed_outbound_hosts entry '${source}' has port ${port}, outside 1..65535`);
    }
    return { source, scheme: match[1] as string, host: match[2] as string, port };
  });
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

/** True when `url` (http or https) is allowed by one of `rules`. */
export function isOutboundAllowed(rules: readonly OutboundRule[], url: URL): boolean {
  const scheme = url.protocol.replace(/:$/, '');
  const defaultPort = DEFAULT_PORTS[scheme];
  if (defaultPort === undefined) return false;
  const host = url.hostname.toLowerCase();
  const port = url.port === '' ? defaultPort : Number(url.port);
  return rules.some((rule) => {
    if (rule.scheme !== '*' && rule.scheme !== scheme) return false;
    if (!hostMatches(rule.host, host)) return false;
    if (rule.port === '*') return true;
    return port === (rule.port ?? defaultPort);
  });
}
