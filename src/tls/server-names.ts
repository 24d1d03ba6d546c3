// Which certificate answers a client's server name (SNI): exact names first, then wildcards, then the default.

/**
 * True when `pattern` (a certificate's DNS name, lower-cased) covers `serverName`: the same name,
 * or a wildcard `*.example.com` covering exactly one label in its place (`a.example.com`, not
 * `example.com` nor `a.b.example.com`), as RFC 6125 reads it.
 */
export function nameCovers(pattern: string, serverName: string): boolean {
  if (!pattern.startsWith('*.')) return pattern === serverName;
  const dot = serverName.indexOf('.');
  return dot > 0 && serverName.slice(dot + 1) === pattern.slice(2);
}

/**
 * The index of the certificate that answers `serverName` among certificates given by their
 * names, in order: the first with the exact name, else the first with a wildcard covering it,
 * else 0 (the default). A trailing dot and letter case are ignored.
 */
export function pickCertificate(certificates: ReadonlyArray<{ readonly names: readonly string[] }>, serverName: string): number {
  const name = serverName.toLowerCase().replace(/\.$/, '');
  const exact = certificates.findIndex((c) => c.names.includes(name));
  if (exact >= 0) return exact;
  const wildcard = certificates.findIndex((c) => c.names.some((pattern) => pattern.startsWith('*.') && nameCovers(pattern, name)));
  return wildcard >= 0 ? wildcard : 0;
}
