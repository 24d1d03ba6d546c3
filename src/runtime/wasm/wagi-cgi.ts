// The WAGI convention (CGI 1.1 for WebAssembly): request → environment and argv, stdout → response.
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { HeaderPairs, InvocationRequest, InvocationResponse } from '../../instance/index.js';

function decodePath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
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

/** The CGI environment for one request, after the function's own `env` (request values win). */
export function wagiEnv(request: InvocationRequest, bodyLength: number, functionEnv: Readonly<Record<string, string>>): string[] {
  const q = request.url.indexOf('?');
  const query = q < 0 ? '' : request.url.slice(q + 1);
  const hostHeader = typeof request.headers.host === 'string' ? request.headers.host : `${request.host}:${request.serverPort}`;
  const vars: Record<string, string> = { ...functionEnv };
  vars.REQUEST_METHOD = request.method;
  vars.SCRIPT_NAME = request.route.scriptName;
  vars.PATH_INFO = decodePath(request.route.pathInfo);
  vars.X_RAW_PATH_INFO = request.route.pathInfo;
  vars.PATH_TRANSLATED = vars.PATH_INFO;
  vars.QUERY_STRING = query;
  vars.SERVER_NAME = request.host;
  vars.SERVER_PORT = String(request.serverPort);
  vars.SERVER_PROTOCOL = 'HTTP/1.1';
  vars.SERVER_SOFTWARE = 'Lamplighter';
  vars.GATEWAY_INTERFACE = 'CGI/1.1';
  vars.CONTENT_TYPE = typeof request.headers['content-type'] === 'string' ? request.headers['content-type'] : '';
  vars.CONTENT_LENGTH = String(bodyLength);
  vars.REMOTE_ADDR = request.remoteAddress;
  vars.REMOTE_HOST = request.remoteAddress;
  vars.AUTH_TYPE = '';
  vars.REMOTE_USER = '';
  vars.X_FULL_URL = `http://${hostHeader}${request.url}`;
  vars.X_MATCHED_ROUTE = request.route.pattern;
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    vars[`HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = Array.isArray(value) ? value.join(', ') : value;
  }
  return Object.entries(vars).map(([k, v]) => `${k}=${v}`);
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

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
