// The WASI 0.2 interfaces the component host provides, and the export a component must have.

/** Interfaces (without version) a component may import; every 0.2.x version of each is served. */
export const HOST_INTERFACES: readonly string[] = [
  'wasi:cli/environment',
  'wasi:cli/exit',
  'wasi:cli/stdin',
  'wasi:cli/stdout',
  'wasi:cli/stderr',
  'wasi:cli/terminal-input',
  'wasi:cli/terminal-output',
  'wasi:cli/terminal-stdin',
  'wasi:cli/terminal-stdout',
  'wasi:cli/terminal-stderr',
  'wasi:clocks/monotonic-clock',
  'wasi:clocks/wall-clock',
  'wasi:filesystem/types',
  'wasi:filesystem/preopens',
  'wasi:http/types',
  'wasi:http/outgoing-handler',
  'wasi:io/error',
  'wasi:io/poll',
  'wasi:io/streams',
  'wasi:random/random',
  'wasi:random/insecure',
  'wasi:random/insecure-seed',
];

/** The interface a component must export to serve HTTP (any 0.2.x version). */
export const HANDLER_INTERFACE = 'wasi:http/incoming-handler';

/** The WASI version family the host implements. */
export const WASI_VERSION_PREFIX = '0.2.';

/** Splits `ns:pkg/iface@1.2.3` into its unversioned name and version (undefined when absent). */
export function splitVersion(name: string): { name: string; version: string | undefined } {
  const at = name.lastIndexOf('@');
  return at < 0 ? { name, version: undefined } : { name: name.slice(0, at), version: name.slice(at + 1) };
}
