// The WAGI convention (CGI 1.1 for WebAssembly): request → environment and argv, stdout → response.
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { HeaderPairs, InvocationRequest, InvocationResponse } from '../../instance/index.js';

function decodePath(raw: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return raw;
  }
  // A NUL would end the string inside the module and start a forged variable or argument.
  if (decoded.includes('\0')) throw new LamplighterError(ErrorCodes.BAD_REQUEST, 'The request path or query holds an encoded NUL (%00)');
  return decoded;
}

function decodeQueryPart(part: string): string {
  return decodePath(part.replace(/\+/g, ' '));
}

/** argv for a WAGI run: the module name, the manifest's argv, then each query parameter. */
export function wagiArgs(request: InvocationRequest, argv0: string, extra: readonly string[]): string[] {
  const q = request.url.indexOf('?');
  const args = [argv0, ...extra];
  if (q < 0) return args;
  for (const part of request.url.slice(q + 1).split('&')) {
    if (part !== '') args.push(decodeQueryPart(part));
  }
  return args;
}

/** Variables the gateway sets for every request; a manifest `env` entry of the same name is ignored. */
const CGI_NAMES = new Set([
  'REQUEST_METHOD', 'SCRIPT_NAME', 'PATH_INFO', 'X_RAW_PATH_INFO', 'PATH_TRANSLATED', 'QUERY_STRING', 'SERVER_NAME',
  'SERVER_PORT', 'SERVER_PROTOCOL', 'SERVER_SOFTWARE', 'GATEWAY_INTERFACE', 'CONTENT_TYPE', 'CONTENT_LENGTH',
  'REMOTE_ADDR', 'REMOTE_HOST', 'AUTH_TYPE', 'REMOTE_USER', 'X_FULL_URL', 'X_MATCHED_ROUTE', 'HTTPS',
]);

/**
 * The manifest's `env` as the leading part of every environ block (`NAME=value\0` each), built once
 * per function; names the request sets itself (CGI variables, HTTP_*) are left to the request.
 */
export function manifestEnvPrefix(functionEnv: Readonly<Record<string, string>>): string {
  let out = '';
  for (const [name, value] of Object.entries(functionEnv)) {
    if (CGI_NAMES.has(name) || name.startsWith('HTTP_')) continue;
    out += `${name}=${value}\0`;
  }
  return out;
}

/** Options for {@link wagiEnv}. */
export interface WagiEnvOptions {
  /** The run's span as a W3C traceparent: set as HTTP_TRACEPARENT in place of the client's. @default the client's header, if any */
  traceparent?: string;
}

/** The CGI environment of one request as `NAME=value` entries, each ending in NUL, after `prefix`. */
export function wagiEnv(request: InvocationRequest, bodyLength: number, prefix: string, options?: WagiEnvOptions): string {
  const url = request.url;
  const q = url.indexOf('?');
  const query = q < 0 ? '' : url.slice(q + 1);
  const headers = request.headers;
  const hostHeader = typeof headers.host === 'string' ? headers.host : `${request.host}:${request.serverPort}`;
  const pathInfo = decodePath(request.route.pathInfo);
  const contentType = headers['content-type'];
  let env =
    `${prefix}REQUEST_METHOD=${request.method}\0SCRIPT_NAME=${request.route.scriptName}\0PATH_INFO=${pathInfo}\0` +
    `X_RAW_PATH_INFO=${request.route.pathInfo}\0PATH_TRANSLATED=${pathInfo}\0QUERY_STRING=${query}\0` +
    `SERVER_NAME=${request.host}\0SERVER_PORT=${request.serverPort}\0SERVER_PROTOCOL=HTTP/1.1\0SERVER_SOFTWARE=Lamplighter\0` +
    `GATEWAY_INTERFACE=CGI/1.1\0CONTENT_TYPE=${typeof contentType === 'string' ? contentType : ''}\0CONTENT_LENGTH=${bodyLength}\0` +
    `REMOTE_ADDR=${request.remoteAddress}\0REMOTE_HOST=${request.remoteAddress}\0AUTH_TYPE=\0REMOTE_USER=\0` +
    `X_FULL_URL=${request.scheme ?? 'http'}://${hostHeader}${request.originalUrl ?? url}\0X_MATCHED_ROUTE=${request.route.pattern}\0`;
  // As Apache and nginx set it: present, and `on`, only for a request that came over TLS.
  if (request.scheme === 'https') env += 'HTTPS=on\0';
  // A route's named parameters: /users/:id gives X_PARAM_ID.
  const params = request.route.params;
  if (params) for (const name in params) env += `X_PARAM_${name.toUpperCase().replace(/-/g, '_')}=${params[name]}\0`;
  const traceparent = options?.traceparent;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || (traceparent !== undefined && name === 'traceparent')) continue;
    env += `HTTP_${name.toUpperCase().replace(/-/g, '_')}=${Array.isArray(value) ? value.join(', ') : value}\0`;
  }
  if (traceparent !== undefined) env += `HTTP_TRACEPARENT=${traceparent}\0`;
  return env;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What HTTP allows in a header value: tab, visible ASCII, and obs-text bytes. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function badOutput(functionName: string, reason: string): LamplighterError {
  return new LamplighterError(ErrorCodes.BAD_HANDLER_RESPONSE, `Function '${functionName}' wrote a malformed WAGI response: ${reason}`);
}

function findHeaderEnd(out: Uint8Array): [headerEnd: number, bodyStart: number] | undefined {
  for (let i = 0; i < out.length; i++) {
    if (out[i] !== 0x0a) continue;
    if (out[i + 1] === 0x0a) return [i, i + 2];
    if (out[i + 1] === 0x0d && out[i + 2] === 0x0a) return [i, i + 3];
  }
  return undefined;
}

/**
 * Turns a WAGI handler's stdout into a response: header lines, a blank line, the body.
 * `status` sets the code, `location` alone redirects (302), and `content-type` is required.
 */
export function parseWagiOutput(functionName: string, stdout: Uint8Array): InvocationResponse {
  const split = findHeaderEnd(stdout);
  if (!split) {
    throw badOutput(functionName, stdout.length === 0 ? 'it wrote nothing' : 'no blank line after the headers');
  }
  const [headerEnd, bodyStart] = split;
  const text = Buffer.from(stdout.buffer, stdout.byteOffset, headerEnd).toString('latin1');
  const headers: HeaderPairs = [];
  let status: number | undefined;
  let hasContentType = false;
  let location: string | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw badOutput(functionName, `header line '${line.slice(0, 80)}' has no name`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name)) throw badOutput(functionName, `'${name.slice(0, 80)}' is not a valid header name`);
    if (!FIELD_VALUE.test(value)) throw badOutput(functionName, `header '${name.slice(0, 80)}' has a control character in its value`);
    const lower = name.toLowerCase();
    if (lower === 'status') {
      const match = /^(\d{3})(\s.*)?$/.exec(value);
      const code = match ? Number(match[1]) : NaN;
      if (!(code >= 100 && code <= 599)) throw badOutput(functionName, `status '${value.slice(0, 80)}' is not a status code`);
      status = code;
      continue;
    }
    if (lower === 'content-type') hasContentType = true;
    if (lower === 'location') location = value;
    headers.push([name, value]);
  }
  if (!hasContentType && location === undefined) throw badOutput(functionName, 'no content-type header');
  return {
    status: status ?? (location !== undefined ? 302 : 200),
    headers,
    body: Buffer.from(stdout.buffer, stdout.byteOffset + bodyStart, stdout.length - bodyStart),
  };
}
