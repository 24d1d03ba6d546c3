// The gateway's own HTTP/1.1 server: strict request parsing, pipelining, keep-alive, upgrades.
export { Http1Server, type Http1Handlers, type Http1ServerOptions, type Http1TlsSource } from './server.js';
export { ServerRequest, RequestAbortedError } from './server-request.js';
export { ServerResponse, closingResponse } from './server-response.js';
export type { Refusal } from './connection.js';
export { RequestParser, RequestError, parseHead, MAX_REQUEST_HEAD_BYTES, MAX_REQUEST_HEADERS, type RequestHead, type RequestEvents } from './request-parser.js';
export { ChunkedDecoder, type ChunkedDecoderOptions } from './chunked-decoder.js';
export { readHeaderLine, type HeaderLine } from './header-line.js';
export { listTokens } from './token.js';
